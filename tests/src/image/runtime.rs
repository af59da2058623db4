//! The runtime layer: what `gcr.io/distroless/cc-debian12:nonroot` gives a dynamically linked
//! binary, assembled from this machine's Debian files instead of downloaded.
//!
//! ```text
//! ldd <binary>  ─► the dynamic loader at its PT_INTERP path + exactly the shared libraries it loads
//!                  (glibc, libgcc_s, …), with the host's symlinks (/lib64 → usr/lib64, …)
//! /etc/ssl/certs/ca-certificates.crt        the CAs Debian's `ca-certificates` ships (not the
//!                                           host's local additions)
//! /etc/passwd, /etc/group                   root, nobody, nonroot = 65532, as distroless writes them
//! /etc/nsswitch.conf, /etc/os-release       name service order; the host's Debian release
//! /tmp 1777, /root 0700, /home/nonroot 0700 owned by 65532
//! /var/lib/dpkg/status.d/<pkg>, /usr/share/doc/<pkg>/copyright
//!                                           for every Debian package a file came from, so image
//!                                           scanners see the glibc version, and the licences travel
//! ```
//!
//! Distroless' `cc` image also carries libstdc++, libgomp, tzdata and netbase; regcreds needs none of
//! them (ldd lists what it loads; it keeps time in UTC and names ports by number), so they are left out.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use super::layer::{LayerBuilder, ROOT};

/// The base image whose runtime this layer reproduces (the `Dockerfile`'s final `FROM`).
pub const BASE_IMAGE: &str = "gcr.io/distroless/cc-debian12:nonroot";

/// uid and gid of distroless' `nonroot` user.
pub const NONROOT: u64 = 65532;

/// `Env` the base image sets: a `PATH`, and `SSL_CERT_FILE` so OpenSSL-style clients find the bundle.
pub const BASE_ENV: &[&str] = &[
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
];

/// `WorkingDir` of the base image's `nonroot` variant.
pub const BASE_WORKING_DIR: &str = "/home/nonroot";

/// Where the CA bundle lives in the image (and on a Debian host).
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The certificates Debian's `ca-certificates` package ships (Mozilla's root program).
pub const PACKAGED_CAS: &str = "/usr/share/ca-certificates/mozilla";

const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";

const GROUP: &str = "root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n";

/// glibc ≥ 2.34 has the `files` and `dns` services built in: no libnss_* modules are needed.
const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n\
protocols: files\nservices: files\n";

/// The runtime for `binaries` (each must run on this machine): a layer builder the caller can add to.
pub fn runtime_layer(binaries: &[&Path]) -> Result<LayerBuilder> {
    let mut layer = LayerBuilder::new();
    // Package provenance: the path a file was asked for (what dpkg knows) per copied file.
    let mut provenance: Vec<PathBuf> = Vec::new();
    for binary in binaries {
        for library in shared_libraries(binary)? {
            layer.host_path(&library)?;
            provenance.push(library);
        }
    }
    layer.file(CA_BUNDLE, ca_bundle()?, 0o644)?;
    layer.host_path(Path::new("/etc/os-release"))?;
    provenance.push("/etc/os-release".into());
    layer
        .file("/etc/passwd", PASSWD, 0o644)?
        .file("/etc/group", GROUP, 0o644)?
        .file("/etc/nsswitch.conf", NSSWITCH, 0o644)?
        .dir("/tmp", 0o1777, ROOT)?
        .dir("/root", 0o700, ROOT)?
        .dir("/home", 0o755, ROOT)?
        .dir("/home/nonroot", 0o700, (NONROOT, NONROOT))?;
    add_package_records(&mut layer, &provenance)?;
    Ok(layer)
}

/// The CA bundle of the image: every certificate the `ca-certificates` package ships, in name order,
/// as distroless builds it from the same package. Not the host's `/etc/ssl/certs/ca-certificates.crt`:
/// that one also holds whatever local CAs this machine trusts (`/usr/local/share/ca-certificates`,
/// a proxy's, a company's), which a published image must not.
pub fn ca_bundle() -> Result<Vec<u8>> {
    let dir = Path::new(PACKAGED_CAS);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| {
            format!("reading {PACKAGED_CAS}: install Debian's ca-certificates (xtask/scripts/setup-test-deps.sh does)")
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "crt"))
        .collect();
    files.sort();
    let mut bundle = Vec::new();
    for file in &files {
        let pem = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        bundle.extend_from_slice(&pem);
        if !pem.ends_with(b"\n") {
            bundle.push(b'\n');
        }
    }
    if files.len() < 50 {
        bail!(
            "only {} certificates in {PACKAGED_CAS}; is ca-certificates installed completely?",
            files.len()
        );
    }
    Ok(bundle)
}

/// The dynamic loader and every shared library `binary` loads, as `ldd` resolves them on this host.
/// Empty for a static binary; an error names any library that cannot be found.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    // ldd calls a binary for another architecture "not a dynamic executable": it would pass as static
    // and get no libraries at all. This machine's libraries fit only this machine's architecture.
    let machine = elf_machine(binary)?;
    let host = elf_machine(Path::new("/proc/self/exe"))?;
    if machine != host {
        bail!(
            "{} is built for ELF machine {machine:#x}, this machine is {host:#x}: the runtime is assembled \
             from this machine's libraries, so build the binary for this machine",
            binary.display()
        );
    }
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd (Debian's libc-bin)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stdout.contains("not a dynamic executable") || stderr.contains("not a dynamic executable") {
        return Ok(Vec::new());
    }
    if !output.status.success() {
        bail!(
            "ldd {} failed: {}{}",
            binary.display(),
            stdout.trim(),
            stderr.trim()
        );
    }
    parse_ldd(&stdout).with_context(|| format!("libraries of {}", binary.display()))
}

/// `e_machine` of an ELF file (0x3e x86-64, 0xb7 AArch64, …).
fn elf_machine(path: &Path) -> Result<u16> {
    let mut header = [0u8; 20];
    std::io::Read::read_exact(
        &mut std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?,
        &mut header,
    )
    .with_context(|| format!("{} is too short for an ELF file", path.display()))?;
    if &header[..4] != b"\x7fELF" {
        bail!("{} is not an ELF executable", path.display());
    }
    let bytes = [header[18], header[19]];
    // EI_DATA: 1 little-endian, 2 big-endian.
    Ok(if header[5] == 2 {
        u16::from_be_bytes(bytes)
    } else {
        u16::from_le_bytes(bytes)
    })
}

/// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` and `/lib64/ld-linux-x86-64.so.2 (0x…)` give a
/// path; `linux-vdso.so.1 (0x…)` is the kernel's and is skipped; `=> not found` is an error.
fn parse_ldd(output: &str) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    let mut missing = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("statically linked") {
            continue;
        }
        let path = match line.split_once("=> ") {
            Some((name, rest)) if rest.trim() == "not found" => {
                missing.push(name.trim().to_string());
                continue;
            }
            Some((_, rest)) => rest,
            None if line.starts_with('/') => line,
            None => continue,
        };
        let path = path.split(" (").next().unwrap_or(path).trim();
        if path.starts_with('/') {
            paths.push(PathBuf::from(path));
        }
    }
    if !missing.is_empty() {
        bail!("shared libraries not found: {}", missing.join(", "));
    }
    Ok(paths)
}

/// For every Debian package that owns one of `paths` (plus ca-certificates): its dpkg status stanza in
/// `/var/lib/dpkg/status.d/<package>` (where distroless puts them for scanners) and its copyright file.
/// Skipped on hosts without dpkg.
fn add_package_records(layer: &mut LayerBuilder, paths: &[PathBuf]) -> Result<()> {
    if Command::new("dpkg-query").arg("--version").output().is_err() {
        return Ok(());
    }
    let mut packages = BTreeSet::from(["ca-certificates".to_string()]);
    for path in paths {
        packages.extend(owning_package(path));
    }
    for package in packages {
        let status = Command::new("dpkg-query").args(["-s", &package]).output()?;
        if !status.status.success() {
            bail!(
                "dpkg-query -s {package}: {}",
                String::from_utf8_lossy(&status.stderr).trim()
            );
        }
        let name = package.split(':').next().unwrap_or(&package);
        layer.file(format!("/var/lib/dpkg/status.d/{name}"), status.stdout, 0o644)?;
        let copyright = PathBuf::from(format!("/usr/share/doc/{name}/copyright"));
        if copyright.exists() {
            layer.host_path(&copyright)?;
        }
    }
    Ok(())
}

/// `libc6:amd64` for `/lib/x86_64-linux-gnu/libc.so.6`, if dpkg knows the path.
fn owning_package(path: &Path) -> Option<String> {
    let output = Command::new("dpkg-query").arg("-S").arg(path).output().ok()?;
    if !output.status.success() {
        return None;
    }
    // `libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6`; diversions list several, comma-separated.
    let text = String::from_utf8_lossy(&output.stdout);
    let (packages, _) = text.lines().next()?.split_once(": ")?;
    Some(packages.split(',').next()?.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_loader_and_libraries_but_not_the_vdso() -> Result<()> {
        let output = "\tlinux-vdso.so.1 (0x00007ffd3a5f2000)\n\
            \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0c1c9d0000)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0c1c7ef000)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f0c1ddc4000)\n";
        assert_eq!(
            parse_ldd(output)?,
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tstatically linked\n")?.is_empty());
        let err = parse_ldd("\tlibfoo.so.1 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n")
            .expect_err("missing library");
        assert!(err.to_string().contains("libfoo.so.1"), "{err}");
        Ok(())
    }

    #[test]
    fn refuses_what_is_not_a_binary_for_this_machine() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let script = dir.path().join("script");
        std::fs::write(&script, "#!/bin/sh\necho a shell script, not an ELF binary\n")?;
        let err = shared_libraries(&script).expect_err("not ELF");
        assert!(err.to_string().contains("not an ELF executable"), "{err}");
        // This test's own executable, with e_machine changed to another architecture.
        let mut elf = std::fs::read("/proc/self/exe")?;
        let other: u16 = if elf[18] == 0x3e { 0xb7 } else { 0x3e };
        elf[18..20].copy_from_slice(&other.to_le_bytes());
        let foreign = dir.path().join("foreign");
        std::fs::write(&foreign, elf)?;
        let err = shared_libraries(&foreign).expect_err("foreign architecture");
        assert!(
            err.to_string().contains("build the binary for this machine"),
            "{err}"
        );
        Ok(())
    }
}
