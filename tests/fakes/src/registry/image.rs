//! The image every registry holds ([`super::IMAGE`]): a one-layer OCI layout written by hand, pushed
//! and read back with skopeo.

use std::{fs, path::Path, process::Command};

use sha2::{Digest, Sha256};

use super::TestRegistry;

impl TestRegistry {
    /// Runs `skopeo inspect --authfile <authfile>` against [`super::IMAGE`]: `Ok(digest)` if skopeo could
    /// read the manifest with that dockerconfigjson, `Err(stderr)` otherwise.
    pub fn skopeo_inspect(&self, authfile: &Path) -> Result<String, String> {
        let mut command = self.skopeo();
        command
            .arg("inspect")
            .arg("--authfile")
            .arg(authfile)
            .args(self.tls_args(""))
            .args([
                "--format",
                "{{.Digest}}",
                &format!("docker://{}", self.image_name()),
            ]);
        run(command)
    }

    /// Pushes a one-layer image written by hand as an OCI layout, then records its digest.
    pub(super) fn push_image(&mut self) {
        let layout = self.dir.path().join("oci");
        write_oci_layout(&layout);
        let destination = format!("docker://{}", self.image_name());
        let mut copy = self.skopeo();
        copy.args(["copy", "--insecure-policy"])
            .args(self.tls_args("dest-"))
            .args(self.creds_args("dest-"));
        copy.arg(format!("oci:{}:v1", layout.display())).arg(&destination);
        if let Err(stderr) = run(copy) {
            panic!(
                "skopeo copy to {destination} failed: {stderr}\nregistry log:\n{}",
                self.log()
            );
        }
        let mut inspect = self.skopeo();
        inspect
            .arg("inspect")
            .args(self.tls_args(""))
            .args(self.creds_args(""));
        inspect.args(["--format", "{{.Digest}}", &destination]);
        self.digest = run(inspect).unwrap_or_else(|stderr| panic!("skopeo inspect {destination}: {stderr}"));
    }

    /// skopeo with a private HOME, so that no login on the machine can stand in for the one under test.
    fn skopeo(&self) -> Command {
        let mut command = Command::new("skopeo");
        command
            .env("HOME", self.dir.path())
            .env("XDG_RUNTIME_DIR", self.dir.path())
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG");
        command
    }

    /// `--{prefix}cert-dir DIR` for https, `--{prefix}tls-verify=false` for plain http.
    fn tls_args(&self, prefix: &str) -> Vec<String> {
        if self.tls {
            vec![
                format!("--{prefix}cert-dir"),
                self.cert_dir().display().to_string(),
            ]
        } else {
            vec![format!("--{prefix}tls-verify=false")]
        }
    }

    /// `--{prefix}creds user:password` of the first user, or `--{prefix}no-creds`.
    fn creds_args(&self, prefix: &str) -> Vec<String> {
        match self.users.first() {
            Some((user, password)) => vec![format!("--{prefix}creds"), format!("{user}:{password}")],
            None => vec![format!("--{prefix}no-creds")],
        }
    }
}

/// Runs a command to completion: trimmed stdout on success, stderr otherwise.
fn run(mut command: Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

/// Writes an OCI image layout with one uncompressed layer holding `hello.txt`, tagged `v1`.
fn write_oci_layout(layout: &Path) {
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("layout dir");
    let put = |bytes: &[u8]| -> serde_json::Value {
        let hex = format!("{:x}", Sha256::digest(bytes));
        fs::write(blobs.join(&hex), bytes).expect("write blob");
        serde_json::json!({ "digest": format!("sha256:{hex}"), "size": bytes.len() })
    };
    let layer = put(&layer_tar());
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [layer["digest"]] },
    });
    let config = put(&serde_json::to_vec(&config).expect("json"));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": with_media_type(config, "application/vnd.oci.image.config.v1+json"),
        "layers": [with_media_type(layer, "application/vnd.oci.image.layer.v1.tar")],
    });
    let mut manifest = with_media_type(
        put(&serde_json::to_vec(&manifest).expect("json")),
        "application/vnd.oci.image.manifest.v1+json",
    );
    manifest["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": "v1" });
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [manifest] });
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("index.json");
    fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
}

fn with_media_type(mut descriptor: serde_json::Value, media_type: &str) -> serde_json::Value {
    descriptor["mediaType"] = media_type.into();
    descriptor
}

fn layer_tar() -> Vec<u8> {
    let content = b"hello from the regcreds test registry\n";
    let mut header = tar::Header::new_ustar();
    header.set_path("hello.txt").expect("tar path");
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, &content[..]).expect("tar append");
    builder.into_inner().expect("tar finish")
}
