// The upload page's script: drag-and-drop, preview, shrinking big photos in the browser,
// a real progress bar, and plain-language errors with a retry.
//
// Without this script the page still works: the form rendered by the server posts straight to
// the bucket and the bucket sends the browser back to {base}/uploads/{id}/done.
//
// Every URL it calls starts with the form's data-base: the path the host nested Shoebox under.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  document.documentElement.classList.add("js");

  const input = document.getElementById("file");
  const zone = document.getElementById("drop-zone");
  const preview = document.getElementById("preview");
  const progressRow = document.getElementById("progress-row");
  const progress = document.getElementById("progress");
  const progressText = document.getElementById("progress-text");
  const statusLine = document.getElementById("status");
  const uploadButton = document.getElementById("upload-button");
  const retryButton = document.getElementById("retry-button");
  const saveButton = document.getElementById("save-button");
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const kind = form.dataset.kind;
  const base = form.dataset.base || "";
  const maxBytes = Number(form.dataset.maxBytes);
  const maxEdge = Number(form.dataset.maxEdge) || 2560;
  const accepted = (form.dataset.accept || "").split(",").filter(Boolean);

  let chosen = null;
  let photoId = null;
  let busy = false;

  input.required = false;

  function say(text, cls) {
    statusLine.textContent = text;
    statusLine.className = cls || "";
  }

  function setProgress(fraction) {
    const pct = Math.max(0, Math.min(100, Math.round(fraction * 100)));
    progress.value = pct;
    progressText.textContent = pct + " %";
  }

  function humanBytes(n) {
    if (n >= 1e6) return (n / 1e6).toFixed(1) + " MB";
    if (n >= 1e3) return Math.round(n / 1e3) + " KB";
    return n + " bytes";
  }

  function choose(file) {
    if (!file) return;
    chosen = file;
    photoId = null;
    saveButton.hidden = true;
    retryButton.hidden = true;
    uploadButton.hidden = false;
    uploadButton.disabled = false;
    setProgress(0);
    progressRow.hidden = true;
    if (accepted.length && file.type && !accepted.includes(file.type)) {
      say("This file is " + (file.type || "of an unknown type") + "; choose a JPEG, PNG, WebP or GIF photo.", "error");
      uploadButton.disabled = true;
      return;
    }
    preview.onerror = () => { preview.hidden = true; };
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    say(file.name + " (" + humanBytes(file.size) + ") is ready to upload.");
  }

  input.addEventListener("change", () => choose(input.files[0]));
  ["dragenter", "dragover"].forEach((t) =>
    zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add("dragging"); }));
  ["dragleave", "drop"].forEach((t) =>
    zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.remove("dragging"); }));
  zone.addEventListener("drop", (e) => choose(e.dataTransfer.files[0]));

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
      throw refusal(message, res.status >= 400 && res.status < 500 && res.status !== 409 && res.status !== 429);
    }
    return data;
  }

  function refusal(message, final) {
    const err = new Error(message);
    err.final = final;
    return err;
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

  function sendToBucket(upload, file) {
    return new Promise((resolve, reject) => {
      const data = new FormData();
      Object.entries(upload.fields).forEach(([k, v]) => data.append(k, v));
      data.append("file", file); // The file must be the last field.
      const xhr = new XMLHttpRequest();
      xhr.open("POST", upload.url);
      xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) setProgress(e.loaded / e.total); });
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) { setProgress(1); resolve(); } else reject(refusal(storageRefusal(xhr), /EntityTooLarge/.test(xhr.responseText || "")));
      });
      xhr.addEventListener("error", () => reject(new Error(storageRefusal(xhr))));
      xhr.addEventListener("abort", () => reject(new Error("The upload was cancelled.")));
      xhr.send(data);
    });
  }

  async function upload() {
    if (!chosen || busy) return;
    busy = true;
    uploadButton.disabled = true;
    retryButton.hidden = true;
    progressRow.hidden = false;
    setProgress(0);
    try {
      say("Preparing…");
      const file = await maybeShrink(chosen);
      if (file.size > maxBytes) throw refusal("This photo is " + humanBytes(file.size) + "; the most allowed is " + humanBytes(maxBytes) + ". Choose a smaller one.", true);
      const signed = await api("/api/uploads", { kind: kind, filename: file.name, content_type: file.type, size: file.size });
      photoId = signed.photo_id;
      say("Uploading…");
      await sendToBucket(signed.upload, file);
      say("Checking the photo…");
      await api("/api/uploads/" + photoId + "/complete");
      say("Uploaded. Save it to keep it.", "done");
      uploadButton.hidden = true;
      saveButton.hidden = false;
    } catch (err) {
      say(err.message || String(err), "error");
      if (err.final) {
        // Nothing to retry: another file is needed.
        progressRow.hidden = true;
        chosen = null;
      } else {
        retryButton.hidden = false;
        uploadButton.hidden = true;
      }
    } finally {
      busy = false;
    }
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); upload(); });
  retryButton.addEventListener("click", upload);
  saveButton.addEventListener("click", async () => {
    saveButton.disabled = true;
    try {
      await api("/api/photos/" + photoId + "/attach");
      say("Saved.", "done");
      window.location.assign(base || "/");
    } catch (err) {
      say(err.message || String(err), "error");
      saveButton.disabled = false;
    }
  });
})();
