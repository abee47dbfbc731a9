//! Deploying as the platforms do: Heroku from `app.json` and the `Procfile`, Docker from the
//! `Dockerfile`'s `CMD`. Each test starts from what is committed (a fresh clone, or the files
//! as they are), gives the process only the variables the deploy description names, filled
//! with values pointing at this test's S3 endpoint and Postgres database, and then asks what
//! a person would: is it healthy, and does an upload go through.
//!
//! Building the clone again would take minutes, so the binary this test run built stands in
//! for the one the buildpack or the image build would make, at the path they would leave it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use reqwest::StatusCode;
use serde_json::Value;
use shoebox_app::settings::embedded_buckets;

use crate::helpers::{
    as_served, drop_pg_database, form_of, fresh_pg_database, photo, post_to_bucket, postgres_server, sign_up_at,
};

/// What the deploy gets from outside: an S3 endpoint with the two buckets, a database, a port.
struct Platform {
    s3: shoebox::embedded::EmbeddedS3,
    database: String,
    port: u16,
    _s3_dir: tempfile::TempDir,
}

impl Platform {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let s3 = shoebox::embedded::start(
            &dir.path().join("s3"),
            "127.0.0.1:0".parse().expect("addr"),
            &embedded_buckets(),
            &[],
            15_000_000,
        )
        .await
        .expect("embedded S3");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        Self { s3, database: fresh_pg_database().await, port, _s3_dir: dir }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The value a person deploying would give `name`, here pointing at this test's services;
    /// `None` for a variable the test does not know (a deploy description asking for something
    /// new must say here what it means).
    fn value_for(&self, name: &str) -> Option<String> {
        Some(match name {
            "DATABASE_URL" => format!("{}/{}", postgres_server(), self.database),
            "PORT" => self.port.to_string(),
            "SHOEBOX_PUBLIC_URL" => self.base(),
            "SHOEBOX_PUBLIC_BUCKET" => "shoebox-public".into(),
            "SHOEBOX_PRIVATE_BUCKET" => "shoebox-private".into(),
            "AWS_REGION" => "us-east-1".into(),
            "AWS_ACCESS_KEY_ID" => self.s3.credentials.access_key_id.clone(),
            "AWS_SECRET_ACCESS_KEY" => self.s3.credentials.secret_access_key.clone(),
            "AWS_ENDPOINT_URL_S3" => self.s3.endpoint.clone(),
            _ => return None,
        })
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        drop_pg_database(self.database.clone());
    }
}

/// A process started as a platform starts one. Stopping it signals it and every process it
/// started, each by its own id (Heroku and Docker signal every process of the dyno or
/// container); dropping it kills them. Its output is kept in a file for failure messages.
struct Process {
    child: tokio::process::Child,
    log: PathBuf,
}

impl Process {
    fn start(mut command: tokio::process::Command, log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        command.stdin(Stdio::null()).stdout(out).stderr(err).kill_on_drop(true);
        Self { child: command.spawn().expect("start the process"), log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().await.expect("wait")
    }

    /// This process and its descendants, deepest first, read from /proc while they run.
    fn tree(&self) -> Vec<u32> {
        fn walk(pid: u32, out: &mut Vec<u32>) {
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
            for task in tasks {
                let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
                for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                    walk(child, out);
                }
            }
            out.push(pid);
        }
        let mut pids = Vec::new();
        if let Some(pid) = self.child.id() {
            walk(pid, &mut pids);
        }
        pids
    }

    fn signal(&self, signal: &str) {
        for pid in self.tree().into_iter().filter(|pid| *pid > 1) {
            let _ = std::process::Command::new("kill").args([signal, &pid.to_string()]).status();
        }
    }

    /// SIGTERM to each of its processes, as the platform sends it; then, once every one of
    /// them has exited, the first process's status.
    async fn stop(&mut self) -> std::process::ExitStatus {
        let tree = self.tree();
        self.signal("-TERM");
        let exited = |pid: &u32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |stat| stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')))
        };
        // The drain is 25 s at most; the bound only keeps a stuck process from hanging the suite.
        for _ in 0..600 {
            if tree.iter().all(exited) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.wait().await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal("-KILL");
        }
    }
}

/// The process stands for a web dyno or container: wait until `/healthz` answers at all (the
/// process binds its port before it connects anywhere), and say what it printed if it died.
async fn healthz(web: &mut Process, base: &str) -> StatusCode {
    let client = reqwest::Client::new();
    // Start-up is connecting and migrating: seconds. The bound only keeps a broken start from
    // hanging the suite; nothing is measured.
    for _ in 0..600 {
        if let Ok(Some(status)) = web.child.try_wait() {
            panic!("the web process exited ({status}) before answering:\n{}", web.output());
        }
        if let Ok(res) = client.get(format!("{base}/healthz")).send().await {
            return res.status();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the web process never answered:\n{}", web.output());
}

/// What a person does first: sign up, upload a private photo and see it through the app, and
/// a public one and see it at the bucket's address.
async fn an_upload_goes_through(base: &str, s3_endpoint: &str) {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let ann = sign_up_at(base, browser, "ann@example.com").await;
    let bytes = photo("orientation/Portrait_1.jpg");
    let private = ann.upload("id_document", bytes.clone(), "image/jpeg").await;
    assert_eq!(private["state"], "ready");
    let original = ann.get(private["urls"]["original"].as_str().expect("proxy URL")).await;
    assert_eq!(original.status(), StatusCode::OK);
    assert_eq!(original.bytes().await.expect("bytes").as_ref(), as_served(&bytes).as_slice());

    let signed: Value = ann.sign("avatar", "image/jpeg", bytes.len()).await.json().await.expect("json");
    let (url, fields) = form_of(&signed);
    assert!(url.starts_with(s3_endpoint), "the form posts to the configured endpoint: {url}");
    assert_eq!(post_to_bucket(&url, &fields, bytes.clone(), "image/jpeg").await.status(), StatusCode::CREATED);
    let done = ann.complete(signed["photo_id"].as_str().expect("id")).await;
    assert_eq!(done.status(), StatusCode::OK);
    let public: Value = done.json().await.expect("json");
    let public_url = public["photo"]["urls"]["original"].as_str().expect("public URL");
    assert!(public_url.starts_with(s3_endpoint), "{public_url}");
}

/// The repository as committed, cloned afresh: what Heroku builds from.
fn fresh_clone(into: &Path) -> PathBuf {
    let repo = env!("CARGO_MANIFEST_DIR");
    let clone = into.join("app");
    let status = std::process::Command::new("git")
        .args(["clone", "--quiet", repo])
        .arg(&clone)
        .status()
        .expect("git must be installed to clone the repository");
    assert!(status.success(), "git clone {repo}");
    clone
}

/// `name: command` lines, as Heroku reads a Procfile.
fn procfile(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(name, command)| (name.trim().to_owned(), command.trim().to_owned()))
        .filter(|(name, _)| !name.is_empty() && !name.starts_with('#'))
        .collect()
}

/// The config vars a deploy from `app.json` has: for each variable it names, what the person
/// deploying fills in (required ones), else the value `app.json` gives, else nothing (optional
/// ones left empty). Only these, and what the platform itself sets.
fn config_vars(app_json: &Value, platform: &Platform) -> BTreeMap<String, String> {
    let env = app_json["env"].as_object().expect("app.json has env");
    let mut vars = BTreeMap::new();
    for (name, spec) in env {
        let value = match (platform.value_for(name), spec["value"].as_str()) {
            (Some(v), _) => v,
            (None, Some(v)) => v.to_owned(),
            (None, None) if spec["required"] == Value::Bool(false) => continue,
            (None, None) => panic!("app.json asks for {name}: say in Platform::value_for what a deploy gives it"),
        };
        vars.insert(name.clone(), value);
    }
    for name in ["PORT", "DATABASE_URL"] {
        vars.insert(name.into(), platform.value_for(name).expect("known"));
    }
    vars
}

/// A command as a Heroku dyno runs it: in the slug's folder (also `$HOME`), with the slug's
/// `.profile.d` scripts sourced first, through bash, with the config vars and a system `PATH`.
fn dyno_command(slug: &Path, command: &str, vars: &BTreeMap<String, String>) -> tokio::process::Command {
    let script = format!("for f in .profile.d/*.sh; do . \"$f\"; done; {command}");
    let mut c = tokio::process::Command::new("bash");
    c.arg("-c").arg(script).current_dir(slug).env_clear().envs(vars);
    c.env("HOME", slug).env("PATH", "/usr/local/bin:/usr/bin:/bin");
    c
}

/// Heroku from `app.json`: a fresh clone, the buildpack's binary where it leaves it, only the
/// variables `app.json` names (plus `PORT` and `DATABASE_URL`), then the Procfile's `release`
/// and `web` commands exactly as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heroku_runs_the_procfile_from_a_fresh_clone() {
    let platform = Platform::new().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let slug = fresh_clone(tmp.path());
    // What the emk/rust buildpack leaves in the slug: target/release/shoebox.
    let release_dir = slug.join("target/release");
    std::fs::create_dir_all(&release_dir).expect("mkdir");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_shoebox"), release_dir.join("shoebox")).expect("symlink");

    let app_json: Value =
        serde_json::from_str(&std::fs::read_to_string(slug.join("app.json")).expect("app.json")).expect("JSON");
    let vars = config_vars(&app_json, &platform);
    let processes = procfile(&std::fs::read_to_string(slug.join("Procfile")).expect("Procfile"));

    let release = processes.get("release").expect("a release phase");
    let mut migrate = Process::start(dyno_command(&slug, release, &vars), tmp.path().join("release.log"));
    let status = migrate.wait().await;
    assert!(status.success(), "`{release}` failed ({status}):\n{}", migrate.output());

    let web = processes.get("web").expect("a web process");
    let mut dyno = Process::start(dyno_command(&slug, web, &vars), tmp.path().join("web.log"));
    assert_eq!(healthz(&mut dyno, &platform.base()).await, StatusCode::OK, "{}", dyno.output());
    an_upload_goes_through(&platform.base(), &platform.s3.endpoint).await;
    let status = dyno.stop().await;
    assert!(dyno.output().contains("stopped"), "SIGTERM drains and stops ({status}):\n{}", dyno.output());
}

/// The Dockerfile's last stage: its `ENV`, `WORKDIR` and exec-form `CMD`.
struct Image {
    env: Vec<(String, String)>,
    workdir: String,
    cmd: Vec<String>,
}

fn image(dockerfile: &str) -> Image {
    let last_stage = dockerfile.rsplit("\nFROM ").next().expect("a FROM");
    let mut image = Image { env: Vec::new(), workdir: "/".into(), cmd: Vec::new() };
    for line in last_stage.lines() {
        if let Some(pairs) = line.strip_prefix("ENV ") {
            for pair in pairs.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("ENV NAME=value");
                image.env.push((k.to_owned(), v.to_owned()));
            }
        } else if let Some(dir) = line.strip_prefix("WORKDIR ") {
            dir.trim().clone_into(&mut image.workdir);
        } else if let Some(cmd) = line.strip_prefix("CMD ") {
            image.cmd = serde_json::from_str(cmd).expect("CMD in exec form: a JSON array");
        }
    }
    assert!(!image.cmd.is_empty(), "the image has a CMD");
    image
}

/// The variables the README gives the image: the `NAME=value` lines of its `shoebox.env` block.
fn readme_docker_env(readme: &str) -> Vec<String> {
    let start = readme.find("# shoebox.env").expect("README shows the image's shoebox.env");
    let block = &readme[start..readme[start..].find("```").map_or(readme.len(), |e| start + e)];
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(name, _)| name.to_owned()))
        .collect()
}

/// Docker from the `Dockerfile`: its `CMD`, run as the image runs it (no shell; the binary on
/// `PATH` where the build copies it; the image's `ENV`; its `WORKDIR`, here a temporary folder
/// standing for it), with the variables the README's `shoebox.env` gives, and another `PORT`
/// (`-e PORT=...`), as the one in the image may be taken on this machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_image_serves_with_the_environment_the_readme_gives() {
    let platform = Platform::new().await;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let image = image(&std::fs::read_to_string(repo.join("Dockerfile")).expect("Dockerfile"));
    let documented = readme_docker_env(&std::fs::read_to_string(repo.join("README.md")).expect("README"));
    assert!(documented.len() >= 5, "{documented:?}");

    let tmp = tempfile::tempdir().expect("tmp");
    let workdir = tmp.path().join("workdir");
    let bin = tmp.path().join("usr-local-bin");
    std::fs::create_dir_all(&workdir).expect("mkdir");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_shoebox"), bin.join("shoebox")).expect("symlink");

    let inside = |v: &str| v.replace(&image.workdir, workdir.to_str().expect("utf8"));
    let mut vars: BTreeMap<String, String> = image.env.iter().map(|(k, v)| (k.clone(), inside(v))).collect();
    for name in &documented {
        let value = platform.value_for(name).unwrap_or_else(|| panic!("README gives the image {name}: fill it here"));
        vars.insert(name.clone(), value);
    }
    vars.insert("PORT".into(), platform.value_for("PORT").expect("port"));
    vars.insert("PATH".into(), format!("{}:/usr/bin:/bin", bin.display()));

    let program = bin.join(&image.cmd[0]);
    assert!(program.exists(), "the CMD's program {} is what the image copies to /usr/local/bin", image.cmd[0]);
    let mut command = tokio::process::Command::new(program);
    command.args(&image.cmd[1..]).current_dir(&workdir).env_clear().envs(&vars);
    let mut container = Process::start(command, tmp.path().join("container.log"));
    assert_eq!(healthz(&mut container, &platform.base()).await, StatusCode::OK, "{}", container.output());
    an_upload_goes_through(&platform.base(), &platform.s3.endpoint).await;
    container.stop().await;
}

#[test]
fn the_procfile_and_dockerfile_are_read_as_their_platforms_read_them() {
    let p = procfile("web: shoebox serve\nrelease: shoebox migrate\n");
    assert_eq!(p["web"], "shoebox serve");
    assert_eq!(p["release"], "shoebox migrate");
    let i = image(
        "FROM a AS build\nENV X=1\nCMD [\"no\"]\nFROM b\nWORKDIR /data\nENV PORT=3000 D=/data\nCMD [\"shoebox\", \"serve\"]\n",
    );
    assert_eq!((i.workdir.as_str(), i.cmd.as_slice()), ("/data", &["shoebox".to_owned(), "serve".to_owned()][..]));
    assert_eq!(i.env, [("PORT".to_owned(), "3000".to_owned()), ("D".to_owned(), "/data".to_owned())]);
}
