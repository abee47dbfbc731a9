// The upload page's script: several photos at once (chosen or dropped), each with its own
// preview, shrinking in the browser, real progress bar, completion, and plain-language error
// or retry.
//
// Without this script the page still works, one photo per form: the form rendered by the
// server posts straight to the bucket and the bucket sends the browser back to
// {base}/uploads/{id}/done. The script asks for a form of its own for each file instead, so
// the files are independent of each other: one refused does not stop the rest.
//
// Every URL it calls starts with the form's data-base: the path the host nested Shoebox under.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  document.documentElement.classList.add("js");

  const input = document.getElementById("file");
  const zone = document.getElementById("drop-zone");
  const list = document.getElementById("files");
  const itemTemplate = document.getElementById("file-item");
  const summary = document.getElementById("status");
  const uploadButton = document.getElementById("upload-button");
  const saveButton = document.getElementById("save-button");
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const kind = form.dataset.kind;
  const base = form.dataset.base || "";
  const maxBytes = Number(form.dataset.maxBytes);
  const maxEdge = Number(form.dataset.maxEdge) || 2560;
  const accepted = (form.dataset.accept || "").split(",").filter(Boolean);
  // A kind that keeps one photo per person (a profile photo) takes one file at a time.
  const multiple = form.dataset.multiple === "true";
  // Files worked on at once. Three overlap one file's signing and checking with another's
  // bytes without starving each other of the connections a browser opens to one host (six),
  // and bound memory: shrinking a camera photo holds its decoded pixels (about 90 MB at 22 MP).
  const PARALLEL = 3;
  // How many times one file waits out the signing limit (429) before it asks for a person.
  const MAX_WAITS = 5;

  // Each file: {file, el, state, photoId, ...its elements}. The state is also the element's
  // data-state: ready → queued → working (→ waiting → working) → uploaded → saved, or failed
  // (a retry may help) or refused (another file is needed).
  const items = [];
  let running = 0;
  let saving = false;

  input.required = false;
  input.multiple = multiple;

  function humanBytes(n) {
    if (n >= 1e6) return (n / 1e6).toFixed(1) + " MB";
    if (n >= 1e3) return Math.round(n / 1e3) + " KB";
    return n + " bytes";
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  function say(item, text, cls) {
    item.status.textContent = text;
    item.status.className = "file-status" + (cls ? " " + cls : "");
  }

  function setState(item, state) {
    item.state = state;
    item.el.dataset.state = state;
    item.retry.hidden = state !== "failed";
    // Only a file nothing is happening to can be taken off the list.
    item.remove.hidden = state === "queued" || state === "working" || state === "waiting" || state === "saved";
  }

  function setProgress(item, fraction) {
    const pct = Math.max(0, Math.min(100, Math.round(fraction * 100)));
    item.progress.value = pct;
    item.progressText.textContent = pct + " %";
  }

  function addItem(file) {
    const el = itemTemplate.content.firstElementChild.cloneNode(true);
    const item = {
      file: file,
      el: el,
      state: "ready",
      photoId: null,
      preview: el.querySelector(".preview"),
      progressRow: el.querySelector(".progress-row"),
      progress: el.querySelector("progress"),
      progressText: el.querySelector(".progress-text"),
      status: el.querySelector(".file-status"),
      retry: el.querySelector(".retry"),
      remove: el.querySelector(".remove"),
    };
    el.querySelector(".file-name").textContent = file.name + " (" + humanBytes(file.size) + ")";
    // Every file's controls say which file they are for, as a list of "Try again" buttons
    // would not.
    item.progress.setAttribute("aria-label", "Upload of " + file.name);
    item.retry.setAttribute("aria-label", "Try again: " + file.name);
    item.remove.setAttribute("aria-label", "Remove " + file.name);
    item.status.tabIndex = -1;
    item.retry.addEventListener("click", () => {
      enqueue(item);
      item.status.focus(); // The button hides itself; its file's status is where things happen now.
    });
    item.remove.addEventListener("click", () => removeItem(item, true));
    items.push(item);
    list.appendChild(el);
    list.hidden = false;
    setState(item, "ready");
    if (accepted.length && file.type && !accepted.includes(file.type)) {
      setState(item, "refused");
      say(item, "This file is " + file.type + "; choose a JPEG, PNG, WebP or GIF photo.", "error");
      return;
    }
    item.url = URL.createObjectURL(file);
    item.preview.alt = "Preview of " + file.name;
    item.preview.onerror = () => { item.preview.hidden = true; };
    item.preview.src = item.url;
    item.preview.hidden = false;
    say(item, "Ready to upload.");
  }

  function removeItem(item, moveFocus) {
    const at = items.indexOf(item);
    if (at < 0) return;
    items.splice(at, 1);
    if (item.url) URL.revokeObjectURL(item.url);
    item.el.remove();
    list.hidden = items.length === 0;
    if (moveFocus) {
      // The button that had focus is gone: the next file's, or else the file picker, takes it.
      const next = items[Math.min(at, items.length - 1)];
      if (next && !next.remove.hidden) next.remove.focus();
      else input.focus();
    }
    refresh();
  }

  function choose(files) {
    if (!files || !files.length || saving) return;
    let chosen = Array.from(files);
    if (!multiple) {
      // One photo at a time: a new choice replaces whatever is not on its way.
      chosen = chosen.slice(0, 1);
      items.filter((i) => !inFlight(i)).forEach((i) => removeItem(i, false));
    }
    chosen.forEach(addItem);
    // Choosing the same file again must still be noticed.
    input.value = "";
    refresh();
  }

  function inFlight(item) {
    return item.state === "queued" || item.state === "working" || item.state === "waiting";
  }

  input.addEventListener("change", () => choose(input.files));
  ["dragenter", "dragover"].forEach((t) =>
    zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add("dragging"); }));
  ["dragleave", "drop"].forEach((t) =>
    zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.remove("dragging"); }));
  zone.addEventListener("drop", (e) => choose(e.dataTransfer && e.dataTransfer.files));

  // Shrink photos whose longer side is above maxEdge, or that are over the size limit, to a
  // JPEG at quality 0.85. Drawing through a canvas also applies the EXIF orientation and drops
  // every bit of metadata, GPS included. GIFs are left alone so animations survive.
  async function maybeShrink(file) {
    if (!/^image\/(jpeg|png|webp)$/.test(file.type) || typeof createImageBitmap !== "function") return file;
    let bitmap;
    try {
      bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    } catch (_) {
      return file; // The server will judge it.
    }
    const longest = Math.max(bitmap.width, bitmap.height);
    if (longest <= maxEdge && file.size <= maxBytes) { bitmap.close(); return file; }
    const scale = Math.min(1, maxEdge / longest);
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
    if (!blob) return file;
    const name = file.name.replace(/\.[^.]*$/, "") + ".jpg";
    return new File([blob], name, { type: "image/jpeg" });
  }

  async function api(path, body) {
    const res = await fetch(base + path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    let data = null;
    try { data = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok) {
      const message = (data && data.message) || "The server answered " + res.status + ". Try again.";
      // A 4xx is a verdict on this file or request (retrying the same file gives the same
      // answer), except 409 (not there yet) and 429 (too many requests), which pass.
      const err = refusal(message, res.status >= 400 && res.status < 500 && res.status !== 409 && res.status !== 429);
      err.status = res.status;
      err.retryAfter = Number(res.headers.get("Retry-After")) || 0;
      throw err;
    }
    return data;
  }

  function refusal(message, final) {
    const err = new Error(message);
    err.final = final;
    return err;
  }

  // Ask for this file's form. The signing limit's 429 is waited out as its Retry-After says,
  // holding this file's place: the limit is the uploader's, so the files queued behind it
  // would only meet it too.
  async function signFor(item, file) {
    for (let waits = 0; ; waits++) {
      try {
        return await api("/api/uploads", { kind: kind, filename: file.name, content_type: file.type, size: file.size });
      } catch (err) {
        if (err.status !== 429 || waits >= MAX_WAITS) throw err;
        const secs = Math.max(1, Math.ceil(err.retryAfter || 5));
        setState(item, "waiting");
        say(item, "Too many uploads this minute: wait " + secs + (secs === 1 ? " second" : " seconds") + ". It starts again by itself.");
        refresh();
        // A little past the moment the limit opens again, so the retry does not arrive early.
        await sleep(secs * 1000 + 250);
        setState(item, "working");
        say(item, "Trying again…");
        refresh();
      }
    }
  }

  // What S3 says when it refuses a form, in words a person can act on.
  function storageRefusal(xhr) {
    const text = xhr.responseText || "";
    const code = (text.match(/<Code>([^<]*)<\/Code>/) || [])[1] || "";
    if (/EntityTooLarge/.test(code) || /content-length/i.test(text)) return "The photo is larger than this kind allows. Choose a smaller one.";
    if (/Expired|expired/.test(code + text)) return "The upload form expired. Try again.";
    if (xhr.status === 0) return "The upload was interrupted: check your connection and try again.";
    return "The storage service refused the upload (" + (code || xhr.status) + "). Try again.";
  }

  function sendToBucket(upload, file, onProgress) {
    return new Promise((resolve, reject) => {
      const data = new FormData();
      Object.entries(upload.fields).forEach(([k, v]) => data.append(k, v));
      data.append("file", file); // The file must be the last field.
      const xhr = new XMLHttpRequest();
      xhr.open("POST", upload.url);
      xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) { onProgress(1); resolve(); } else reject(refusal(storageRefusal(xhr), /EntityTooLarge/.test(xhr.responseText || "")));
      });
      xhr.addEventListener("error", () => reject(new Error(storageRefusal(xhr))));
      xhr.addEventListener("abort", () => reject(new Error("The upload was cancelled.")));
      xhr.send(data);
    });
  }

  // One file, start to finish. Whatever happens to it is said on its own line; nothing it
  // throws reaches the other files.
  async function send(item) {
    setState(item, "working");
    item.photoId = null;
    setProgress(item, 0);
    item.progressRow.hidden = false;
    try {
      say(item, "Preparing…");
      const file = await maybeShrink(item.file);
      if (file.size > maxBytes) throw refusal("This photo is " + humanBytes(file.size) + "; the most allowed is " + humanBytes(maxBytes) + ". Choose a smaller one.", true);
      const signed = await signFor(item, file);
      item.photoId = signed.photo_id;
      say(item, "Uploading…");
      await sendToBucket(signed.upload, file, (f) => setProgress(item, f));
      say(item, "Checking the photo…");
      await api("/api/uploads/" + item.photoId + "/complete");
      setState(item, "uploaded");
      say(item, "Uploaded.", "done");
    } catch (err) {
      setState(item, err.final ? "refused" : "failed");
      say(item, err.message || String(err), "error");
    }
  }

  function enqueue(item) {
    setState(item, "queued");
    say(item, "Waiting for its turn…");
    pump();
    refresh();
  }

  // Start queued files, in the order chosen, while fewer than PARALLEL are under way.
  function pump() {
    while (running < PARALLEL) {
      const next = items.find((i) => i.state === "queued");
      if (!next) return;
      running++;
      send(next).finally(() => {
        running--;
        pump();
        refresh();
      });
    }
  }

  // The page's own controls and its one-line summary, from the files' states.
  function refresh() {
    const count = (state) => items.filter((i) => i.state === state).length;
    const ready = count("ready");
    const busy = items.filter(inFlight).length;
    const uploaded = count("uploaded");
    const failed = count("failed");
    const refused = count("refused");
    const focusLost = !document.activeElement || document.activeElement === document.body || document.activeElement === summary;

    uploadButton.hidden = ready === 0;
    uploadButton.disabled = ready === 0 || saving;
    uploadButton.textContent = ready > 1 ? "Upload " + ready + " photos" : "Upload";
    const canSave = busy === 0 && uploaded > 0;
    const saveWasHidden = saveButton.hidden;
    saveButton.hidden = !canSave;
    saveButton.textContent = uploaded > 1 ? "Save " + uploaded + " photos" : "Save";

    let text = "";
    let cls = "";
    if (saving) {
      text = "Saving…";
    } else if (busy > 0) {
      text = "Uploading " + busy + (busy === 1 ? " photo…" : " photos…");
      const waiting = count("waiting");
      if (waiting) text += " " + waiting + " waiting for the upload limit.";
    } else if (uploaded + failed + refused > 0) {
      const parts = [];
      if (uploaded) parts.push(uploaded + " uploaded");
      if (failed) parts.push(failed + " failed");
      if (refused) parts.push(refused + " refused");
      text = items.length === 1 && uploaded === 1 ? "Uploaded." : parts.join(", ") + ".";
      if (uploaded) text += uploaded === 1 ? " Save it to keep it." : " Save them to keep them.";
      if (failed) text += " Try the failed " + (failed === 1 ? "one" : "ones") + " again.";
      cls = uploaded && !failed && !refused ? "done" : !uploaded ? "error" : "";
    }
    if (summary.textContent !== text) summary.textContent = text;
    summary.className = cls;
    // The Upload button hid itself once clicked: Save, when it appears, is the next step.
    if (canSave && saveWasHidden && focusLost) saveButton.focus();
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const hadFocus = document.activeElement === uploadButton;
    items.filter((i) => i.state === "ready").forEach(enqueue);
    // The button hides itself; the summary says what is happening.
    if (hadFocus && uploadButton.hidden) summary.focus();
  });

  saveButton.addEventListener("click", async () => {
    if (saving) return;
    saving = true;
    saveButton.disabled = true;
    refresh();
    let failures = 0;
    // One after another: attaching is quick, and the order is the order chosen.
    for (const item of items.filter((i) => i.state === "uploaded")) {
      try {
        await api("/api/photos/" + item.photoId + "/attach");
        setState(item, "saved");
        say(item, "Saved.", "done");
      } catch (err) {
        failures++;
        say(item, err.message || String(err), "error");
      }
    }
    saving = false;
    saveButton.disabled = false;
    // Stay while something here can still be tried again; otherwise, to the saved photos.
    if (!failures && !items.some((i) => i.state === "failed" || i.state === "ready")) {
      summary.textContent = "Saved.";
      summary.className = "done";
      window.location.assign(base || "/");
      return;
    }
    refresh();
    if (!failures) {
      summary.textContent = "Saved. " + summary.textContent;
    }
  });
})();
