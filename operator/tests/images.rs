//! The container images, built by `scripts/image.sh` from the binaries the tests built and
//! run with podman (runc): the engine image serves a FIX counterparty and stops cleanly on
//! `podman stop`, and `fixctl local drill` runs inside the operator image. Both images run
//! as a non-root user, carry OCI labels and have no shell.

use fix_e2e::trading::{field, fill, logon};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// What podman needs here (`crun` does not work on this machine; the limits are the
/// machine's own).
const RUN: [&str; 8] = [
    "--runtime",
    "runc",
    "run",
    "--network",
    "host",
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
];

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("podman {args:?}: {e} (install podman and runc: scripts/test.sh does as root)")
        })
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args: Vec<&str> = RUN.to_vec();
    args.push("nproc=1000:1000");
    args.extend_from_slice(extra);
    args
}

/// Removes a container when the test ends, however it ends.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.0])
            .output();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Builds both images from the directory holding this test's binaries; returns their
/// names (engine, operator).
fn build_images() -> (String, String) {
    let bins = Path::new(env!("CARGO_BIN_EXE_fixctl"))
        .parent()
        .expect("binary directory");
    assert!(
        bins.join("fix-engine").exists(),
        "{} is missing: cargo build -p fix-engine (cargo test --workspace builds it)",
        bins.join("fix-engine").display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/image.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--bin-dir")
        .arg(bins)
        .arg("all")
        .output()
        .expect("scripts/image.sh runs");
    assert!(out.status.success(), "scripts/image.sh: {}", text(&out));
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        names,
        [
            format!("localhost/fix-engine:{version}"),
            format!("localhost/fix-operator:{version}")
        ],
        "{}",
        text(&out)
    );
    (names[0].clone(), names[1].clone())
}

fn inspect(image: &str, format: &str) -> String {
    let out = podman(&["image", "inspect", image, "--format", format]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn check_image(image: &str, title: &str) {
    assert_eq!(inspect(image, "{{.Config.User}}"), "65532:65532", "{image}");
    let labels = inspect(image, "{{json .Config.Labels}}");
    let labels: serde_json::Value = serde_json::from_str(&labels).expect("labels");
    assert_eq!(labels["org.opencontainers.image.title"], title, "{labels}");
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION"),
        "{labels}"
    );
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    let shell = podman(&run_args(&[
        "--rm",
        "--entrypoint",
        "/bin/sh",
        image,
        "-c",
        "true",
    ]));
    assert!(
        !shell.status.success() && text(&shell).contains("/bin/sh: no such file"),
        "{image} has a shell, or podman failed otherwise: {}",
        text(&shell)
    );
}

fn engine_config(dir: &Path, port: u16) -> PathBuf {
    let config = dir.join("engine.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\ndata_dir = \"/var/lib/fix-engine/data\"\napp = \"exec\"\n\n[[session]]\nbegin_string = \"FIX.4.4\"\nsender_comp_id = \"EXEC\"\ntarget_comp_id = \"CLIENT\"\nrole = \"acceptor\"\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    )
    .expect("config");
    // The image's user (65532) reads it through the bind mount.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_images_run_an_acceptor_and_the_drill() {
    let (engine, operator) = build_images();
    check_image(&engine, "fix-engine");
    check_image(&operator, "fix-operator");

    // The engine image as an acceptor, a FIX counterparty against it.
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    engine_config(dir.path(), port);
    let name = Container(format!("fix-engine-test-{}", std::process::id()));
    let mount = format!("{}:/config:ro", dir.path().display());
    let started = podman(&run_args(&[
        "-d",
        "--name",
        &name.0,
        "-v",
        &mount,
        &engine,
        "--config",
        "/config/engine.toml",
    ]));
    assert!(started.status.success(), "{}", text(&started));
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the engine in its container never listened: {}",
            text(&podman(&["logs", &name.0]))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut c, _) = logon(addr, 1).await;
    fill(&mut c, 2, "IMG1").await;

    // `podman stop` sends SIGTERM: the engine logs the session out and exits 0.
    let stopper = tokio::task::spawn_blocking({
        let name = name.0.clone();
        move || podman(&["stop", "-t", "20", &name])
    });
    let logout = c.next(Duration::from_secs(15)).await;
    assert_eq!(field(&logout, "35").as_deref(), Some("5"), "{logout:?}");
    let stopped = stopper.await.expect("join");
    assert!(stopped.status.success(), "{}", text(&stopped));
    let code = podman(&["inspect", &name.0, "--format", "{{.State.ExitCode}}"]);
    assert_eq!(
        String::from_utf8_lossy(&code.stdout).trim(),
        "0",
        "{}",
        text(&podman(&["logs", &name.0]))
    );
    drop(c);

    // fixctl's local drill inside the operator image: a leader, a standby, the lease on
    // SQLite and the proxy, one kill-and-takeover, nothing lost.
    let listen = format!("127.0.0.1:{}", free_port());
    let drill = tokio::task::spawn_blocking({
        let operator = operator.clone();
        move || {
            podman(&run_args(&[
                "--rm",
                "--entrypoint",
                "/usr/local/bin/fixctl",
                &operator,
                "local",
                "drill",
                "--output",
                "json",
                "--cycles",
                "1",
                "--rate",
                "50",
                "--listen",
                &listen,
            ]))
        }
    })
    .await
    .expect("join");
    assert!(
        drill.status.success(),
        "the drill in the image: {}",
        text(&drill)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&drill.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&drill)));
    println!("drill in the operator image: {report}");
    assert_eq!(
        report["cycles"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    assert!(report["sent"].as_u64() > Some(0), "{report}");
    for zero in ["lost", "unflagged_duplicates", "gaps"] {
        assert_eq!(report[zero], 0, "{zero}: {report}");
    }
    let help = podman(&run_args(&["--rm", &operator, "--help"]));
    assert!(help.status.success(), "{}", text(&help));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage"));
}
