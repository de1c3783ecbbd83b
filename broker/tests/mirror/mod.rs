//! Installing like a real provider: `scripts/release` lays out a release,
//! `platform-broker mirror serve` serves it over HTTPS (a CA made here,
//! trusted through `SSL_CERT_FILE`), and a fresh Terraform working directory
//! whose CLI configuration holds only a `network_mirror` block runs `init` and
//! `plan` with every Terraform binary. Then the attacks: a zip swapped in the
//! release directory, the same with re-computed checksums (the lock file
//! catches it), checksums the key did not sign (the pipelines' installer
//! refuses them).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use sha2::{Digest, Sha256};

use crate::acc::*;
use crate::tour::repo_root;

const VERSION: &str = PROVIDER_VERSION;

/// The mirror process; killed when dropped.
struct Mirror {
    child: Child,
    url: String,
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_mirror(dist: &Path, cert: &Path, key: &Path, log: &Path) -> Mirror {
    let log_file = std::fs::File::create(log).expect("mirror log");
    let mut child = Command::new(broker_bin())
        .args(["mirror", "serve"])
        .arg(dist)
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .expect("start platform-broker mirror serve");
    let mut first = String::new();
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    reader
        .read_line(&mut first)
        .expect("read the mirror's first line");
    let Some(url) = first
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .map(str::to_owned)
    else {
        let _ = child.kill();
        let _ = child.wait();
        let err = std::fs::read_to_string(log).unwrap_or_default();
        panic!("mirror did not start: {first}\n{err}");
    };
    let mut rest = String::new();
    // The summary and the CLI configuration block follow, then nothing.
    for _ in 0..12 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        rest.push_str(&line);
        if line.trim() == "}" && rest.contains("direct {") && rest.ends_with("}\n}\n") {
            break;
        }
    }
    assert!(
        rest.contains(&format!(
            "registry.terraform.io/platform/platform: {VERSION}"
        )) && rest.contains(&format!("url     = \"{url}\"")),
        "mirror start-up text:\n{first}{rest}"
    );
    Mirror { child, url }
}

/// A CA and a server certificate for 127.0.0.1 (PEM files in `dir`):
/// (ca, cert, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name
        .push(DnType::CommonName, "mirror test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_pem = ca.self_signed(&ca_key).expect("CA cert").pem();
    let issuer = Issuer::new(ca, &ca_key);
    let key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("leaf params");
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let cert = leaf.signed_by(&key, &issuer).expect("leaf cert");
    let paths = (
        dir.join("ca.pem"),
        dir.join("mirror.pem"),
        dir.join("mirror.key"),
    );
    std::fs::write(&paths.0, ca_pem).expect("write");
    std::fs::write(&paths.1, cert.pem()).expect("write");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write");
    paths
}

fn output(cmd: &mut Command, what: &str) -> (Output, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[track_caller]
fn ok(cmd: &mut Command, what: &str) -> String {
    let (out, text) = output(cmd, what);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

#[track_caller]
fn fails(cmd: &mut Command, what: &str, needle: &str) -> String {
    let (out, text) = output(cmd, what);
    assert!(
        !out.status.success(),
        "{what} succeeded, expected a failure:\n{text}"
    );
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(needle), "{what}: no {needle:?} in:\n{text}");
    text
}

fn release(out: &Path, bin_dir: &Path, extra: &[&str]) -> String {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts/release"))
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--out")
        .arg(out)
        .args(extra);
    ok(&mut cmd, "scripts/release")
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A zip holding one file `name` with `content` (python3's zipfile).
fn write_zip(path: &Path, name: &str, content: &str) {
    let script = "import sys, zipfile\n\
                  z = zipfile.ZipFile(sys.argv[1], 'w')\n\
                  z.writestr(sys.argv[2], sys.argv[3])\n\
                  z.close()";
    ok(
        Command::new("python3")
            .args(["-c", script])
            .arg(path)
            .args([name, content]),
        "python3 zipfile",
    );
}

/// Rewrites `sums` as an attacker who can write the release directory but
/// has not the signing key would: every line's hash recomputed.
fn recompute_sums(dist: &Path, sums: &str) {
    let path = dist.join(sums);
    let text = std::fs::read_to_string(&path).expect("sums");
    let fresh: String = text
        .lines()
        .map(|l| {
            let (_, file) = l.split_once("  ").expect("sums line");
            format!("{}  {file}\n", sha256_hex(&dist.join(file)))
        })
        .collect();
    std::fs::write(&path, fresh).expect("write sums");
}

/// The quickstart configuration, pinned to the released version.
fn main_tf() -> String {
    let text = std::fs::read_to_string(repo_root().join("examples/quickstart/main.tf"))
        .expect("quickstart main.tf");
    let pinned = text.replacen(
        "source = \"platform/platform\"",
        &format!("source  = \"platform/platform\"\n      version = \"{VERSION}\""),
        1,
    );
    assert_ne!(pinned, text, "the quickstart's required_providers changed");
    pinned
}

/// Terraform in `dir` with only `cli_config` and the test CA.
fn terraform(tf: &Path, dir: &Path, cli_config: &Path, ca: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(tf);
    cmd.current_dir(dir)
        .args(args)
        .env("TF_CLI_CONFIG_FILE", cli_config)
        .env("SSL_CERT_FILE", ca)
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_IN_AUTOMATION", "1");
    for k in [
        "TF_PLUGIN_CACHE_DIR",
        "TF_DATA_DIR",
        "TF_REATTACH_PROVIDERS",
        "PLATFORM_CATALOG",
        "TF_WORKSPACE",
    ] {
        cmd.env_remove(k);
    }
    cmd
}

fn lock_hashes(dir: &Path) -> Vec<String> {
    let lock = std::fs::read_to_string(dir.join(".terraform.lock.hcl")).expect("lock file");
    lock.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("\"h1:") || l.starts_with("\"zh:"))
        .map(|l| l.trim_end_matches(',').trim_matches('"').to_owned())
        .collect()
}

#[test]
fn release_installs_through_the_network_mirror() {
    crate::require_acc!();
    let tmp = tempfile::Builder::new()
        .prefix("platform-mirror.")
        .tempdir()
        .expect("tempdir");
    let root = tmp.path();
    // The binaries this test run built, as scripts/release --bin-dir takes them.
    let bin = root.join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    std::os::unix::fs::symlink(provider_bin(), bin.join("terraform-provider-platform"))
        .expect("symlink");
    std::os::unix::fs::symlink(broker_bin(), bin.join("platform-broker")).expect("symlink");
    // A second platform's provider (never run here, only hashed and locked).
    let other = root.join("other-platform-provider");
    std::fs::write(&other, "a darwin_arm64 build would be here\n").expect("write");

    // 1. The release layout.
    let dist = root.join("dist");
    let said = release(
        &dist,
        &bin,
        &[
            "--provider-binary",
            &format!("darwin_arm64={}", other.display()),
        ],
    );
    assert!(
        said.contains("throwaway key"),
        "no throwaway-key warning:\n{said}"
    );
    let zip = format!("terraform-provider-platform_{VERSION}_linux_amd64.zip");
    let tarball = format!("platform-broker_{VERSION}_linux_amd64.tar.gz");
    let provider_sums = format!("terraform-provider-platform_{VERSION}_SHA256SUMS");
    let broker_sums = format!("platform-broker_{VERSION}_SHA256SUMS");
    let manifest = format!("terraform-provider-platform_{VERSION}_manifest.json");
    for file in [
        zip.as_str(),
        &format!("terraform-provider-platform_{VERSION}_darwin_arm64.zip"),
        &manifest,
        &provider_sums,
        &format!("{provider_sums}.sig"),
        &tarball,
        &broker_sums,
        &format!("{broker_sums}.sig"),
        "platform-release-key.asc",
    ] {
        assert!(dist.join(file).is_file(), "release lacks {file}:\n{said}");
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dist.join(&manifest)).expect("manifest"))
            .expect("manifest JSON");
    assert_eq!(
        manifest,
        serde_json::json!({"version": 1, "metadata": {"protocol_versions": ["6.0"]}})
    );
    // Every checksum line matches its file; the provider sums list the
    // two zips and the manifest.
    let sums = std::fs::read_to_string(dist.join(&provider_sums)).expect("sums");
    assert_eq!(sums.lines().count(), 3, "{sums}");
    for sums in [&provider_sums, &broker_sums] {
        for line in std::fs::read_to_string(dist.join(sums))
            .expect("sums")
            .lines()
        {
            let (hash, file) = line.split_once("  ").expect("`HASH  FILE`");
            assert_eq!(hash, sha256_hex(&dist.join(file)), "{sums}: {file}");
        }
    }
    // The signatures verify with the published key, in a keyring of their own.
    let gnupg = root.join("gnupg");
    std::fs::create_dir(&gnupg).expect("mkdir");
    std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    ok(
        Command::new("gpg")
            .env("GNUPGHOME", &gnupg)
            .args(["--batch", "--import"])
            .arg(dist.join("platform-release-key.asc")),
        "gpg --import",
    );
    for sums in [&provider_sums, &broker_sums] {
        ok(
            Command::new("gpg")
                .env("GNUPGHOME", &gnupg)
                .args(["--batch", "--verify"])
                .arg(dist.join(format!("{sums}.sig")))
                .arg(dist.join(sums)),
            "gpg --verify",
        );
    }
    // The zip holds the binary as Terraform names it, executable.
    let listing = ok(
        Command::new("python3")
            .args([
                "-c",
                "import sys, zipfile\nfor i in zipfile.ZipFile(sys.argv[1]).infolist(): \
                 print(i.filename, oct(i.external_attr >> 16))",
            ])
            .arg(dist.join(&zip)),
        "python3 zipfile",
    );
    assert_eq!(
        listing.trim(),
        format!("terraform-provider-platform_v{VERSION} 0o100755"),
        "zip contents"
    );
    // Reproducible: the same binaries give the same bytes.
    let again = root.join("dist-again");
    release(&again, &bin, &[]);
    for file in [&zip, &tarball] {
        assert_eq!(
            sha256_hex(&dist.join(file)),
            sha256_hex(&again.join(file)),
            "{file} differs between two releases of the same binaries"
        );
    }

    // 2. The mirror, over HTTPS with a CA of this test.
    let (ca, cert, key) = certificates(root);
    let mirror_log = root.join("mirror.log");
    let mirror = start_mirror(&dist, &cert, &key, &mirror_log);
    let cli_config = root.join("mirror.tfrc");
    // Only a network_mirror block: nothing but the mirror can install it.
    std::fs::write(
        &cli_config,
        format!(
            "provider_installation {{\n  network_mirror {{\n    url = \"{}\"\n  }}\n}}\n",
            mirror.url
        ),
    )
    .expect("write");
    let curl = |path: &str| -> (String, String) {
        let (out, _) = output(
            Command::new("curl")
                .args(["-sS", "--cacert"])
                .arg(&ca)
                .args(["-w", "\n%{http_code}"])
                .arg(format!("{}{path}", mirror.url)),
            "curl",
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').expect("status line");
        (body.to_owned(), code.to_owned())
    };
    let (body, code) = curl("registry.terraform.io/platform/platform/index.json");
    assert_eq!(
        (body.as_str(), code.as_str()),
        (r#"{"versions":{"0.1.0":{}}}"#, "200")
    );
    let (body, code) = curl(&format!(
        "registry.terraform.io/platform/platform/{VERSION}.json"
    ));
    assert_eq!(code, "200", "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("version JSON");
    assert_eq!(
        doc["archives"]["linux_amd64"]["hashes"][0],
        format!("zh:{}", sha256_hex(&dist.join(&zip)))
    );
    for (path, code_wanted, error) in [
        (
            "registry.terraform.io/hashicorp/platform/index.json",
            "404",
            "unknown_provider",
        ),
        (
            "registry.terraform.io/platform/platform/9.9.9.json",
            "404",
            "unknown_version",
        ),
        (
            "registry.terraform.io/platform/platform/gnupg.zip",
            "404",
            "not_found",
        ),
        ("releases/mirror.key", "404", "not_found"),
        ("releases/..%2Fmirror.key", "404", "not_found"),
        ("nothing/here", "404", "not_found"),
    ] {
        let (body, code) = curl(path);
        assert_eq!(code, code_wanted, "{path}: {body}");
        let doc: serde_json::Value = serde_json::from_str(&body).expect("error JSON");
        assert_eq!(doc["error"]["code"], error, "{path}: {body}");
    }

    // The client's request id comes back in the header and the error body.
    let (out, _) = output(
        Command::new("curl")
            .args(["-sS", "-i", "--cacert"])
            .arg(&ca)
            .args(["-H", "x-request-id: request-7"])
            .arg(format!("{}nothing/here", mirror.url)),
        "curl",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("x-request-id: request-7") && text.contains(r#""request_id":"request-7""#),
        "{text}"
    );

    // 3. init and plan with every Terraform, from nothing but the mirror.
    let mut locked = Vec::new();
    for tf in terraform_bins() {
        let v = version(&tf);
        let dir = root.join(format!("work-{v}"));
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("main.tf"), main_tf()).expect("write");
        let init = ok(
            &mut terraform(
                &tf,
                &dir,
                &cli_config,
                &ca,
                &["init", "-no-color", "-input=false"],
            ),
            &format!("{v} init"),
        );
        assert!(
            init.contains(&format!(
                "Installed platform/platform v{VERSION} (verified checksum)"
            )),
            "{v} init did not install from the mirror:\n{init}"
        );
        let hashes = lock_hashes(&dir);
        assert!(
            hashes.iter().any(|h| h.starts_with("h1:")),
            "{v}: no h1 hash locked: {hashes:?}"
        );
        let (out, plan) = output(
            &mut terraform(
                &tf,
                &dir,
                &cli_config,
                &ca,
                &["plan", "-no-color", "-input=false", "-detailed-exitcode"],
            ),
            &format!("{v} plan"),
        );
        assert_eq!(out.status.code(), Some(2), "{v} plan:\n{plan}");
        assert!(
            plan.contains("platform_postgres_database.orders will be created"),
            "{v} plan:\n{plan}"
        );
        // Every platform of the release, locked in one go.
        let multi = root.join(format!("lock-{v}"));
        std::fs::create_dir(&multi).expect("mkdir");
        std::fs::write(multi.join("main.tf"), main_tf()).expect("write");
        ok(
            &mut terraform(
                &tf,
                &multi,
                &cli_config,
                &ca,
                &[
                    "providers",
                    "lock",
                    "-no-color",
                    &format!("-net-mirror={}", mirror.url),
                    "-platform=linux_amd64",
                    "-platform=darwin_arm64",
                ],
            ),
            &format!("{v} providers lock"),
        );
        let multi_hashes = lock_hashes(&multi);
        let h1: Vec<&String> = multi_hashes
            .iter()
            .filter(|h| h.starts_with("h1:"))
            .collect();
        assert_eq!(
            h1.len(),
            2,
            "{v}: two platforms, two h1 hashes: {multi_hashes:?}"
        );
        assert!(
            multi_hashes.iter().any(|h| hashes.contains(h)),
            "{v}: {multi_hashes:?}"
        );
        locked.push((tf.clone(), dir));
    }

    // 4. The pipelines' installer, against the same mirror.
    let installer = repo_root().join("examples/pipelines/install-platform.sh");
    let install = |dir: &Path, key: &Path| -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(&installer)
            .env("PLATFORM_MIRROR_URL", &mirror.url)
            .env("PLATFORM_VERSION", VERSION)
            .env("PLATFORM_RELEASE_KEY", key)
            .env("PLATFORM_INSTALL_DIR", dir.join("bin"))
            .env("TF_CLI_CONFIG_FILE", dir.join("cli.tfrc"))
            .env("CURL_CA_BUNDLE", &ca)
            .env("SSL_CERT_FILE", &ca)
            .env_remove("GITHUB_PATH");
        cmd
    };
    let key_file = dist.join("platform-release-key.asc");
    let installed = root.join("installed");
    let said = ok(&mut install(&installed, &key_file), "install-platform.sh");
    assert!(
        said.contains(&format!("platform-broker {VERSION}")),
        "{said}"
    );
    let version_text = ok(
        Command::new(installed.join("bin/platform-broker")).arg("--version"),
        "installed platform-broker --version",
    );
    assert!(version_text.contains(VERSION), "{version_text}");
    // Its CLI configuration installs the provider (with the newest Terraform).
    let tf = terraform_bins().into_iter().next().expect("a terraform");
    let fresh = root.join("work-installer");
    std::fs::create_dir(&fresh).expect("mkdir");
    std::fs::write(fresh.join("main.tf"), main_tf()).expect("write");
    ok(
        &mut terraform(
            &tf,
            &fresh,
            &installed.join("cli.tfrc"),
            &ca,
            &["init", "-no-color"],
        ),
        "init with the installer's CLI configuration",
    );

    // 5. Attacks on the release directory.
    let original = root.join("original.zip");
    std::fs::copy(dist.join(&zip), &original).expect("copy");
    write_zip(
        &dist.join(&zip),
        &format!("terraform-provider-platform_v{VERSION}"),
        "#!/bin/sh\necho swapped\n",
    );
    for tf in terraform_bins() {
        let v = version(&tf);
        let dir = root.join(format!("swapped-{v}"));
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("main.tf"), main_tf()).expect("write");
        // The mirror serves the signed checksums, not the zip's: refused.
        fails(
            &mut terraform(&tf, &dir, &cli_config, &ca, &["init", "-no-color"]),
            &format!("{v} init of a swapped zip"),
            "doesn't match the expected checksum",
        );
        assert!(
            !dir.join(".terraform/providers").exists() || {
                files_under(&dir.join(".terraform/providers")).is_empty()
            }
        );
    }
    // With the checksums re-computed too (no signature needed by a mirror),
    // the lock file recorded at the first init refuses it.
    recompute_sums(&dist, &provider_sums);
    for (tf, dir) in &locked {
        let v = version(tf);
        std::fs::remove_dir_all(dir.join(".terraform")).expect("rm .terraform");
        fails(
            &mut terraform(tf, dir, &cli_config, &ca, &["init", "-no-color"]),
            &format!("{v} init against its lock file"),
            "registry.terraform.io/platform/platform 0.1.0 doesn't match any of the checksums previously recorded in the dependency lock file",
        );
    }
    std::fs::copy(&original, dist.join(&zip)).expect("restore");
    recompute_sums(&dist, &provider_sums);

    // The broker tarball swapped with re-computed checksums: the signature
    // no longer verifies, and the installer installs nothing.
    let tar_original = root.join("original.tar.gz");
    std::fs::copy(dist.join(&tarball), &tar_original).expect("copy");
    std::fs::write(dist.join(&tarball), b"not the broker").expect("write");
    recompute_sums(&dist, &broker_sums);
    let refused = root.join("refused");
    fails(
        &mut install(&refused, &key_file),
        "install-platform.sh of re-summed checksums",
        "the signature does not verify with PLATFORM_RELEASE_KEY",
    );
    assert!(!refused.join("bin/platform-broker").exists());
    // Swapped without touching the checksums: the checksum refuses it.
    std::fs::copy(&tar_original, dist.join(&tarball)).expect("restore");
    recompute_sums(&dist, &broker_sums);
    // (the signature was over the original sums, which recompute_sums just
    // reproduced byte for byte)
    ok(
        &mut install(&root.join("again"), &key_file),
        "install-platform.sh after restore",
    );
    std::fs::write(dist.join(&tarball), b"not the broker").expect("write");
    fails(
        &mut install(&refused, &key_file),
        "install-platform.sh of a swapped tarball",
        "does not match its checksum",
    );
    std::fs::copy(&tar_original, dist.join(&tarball)).expect("restore");
    // Another key than the release's, and no key at all: refused.
    let stranger_home = root.join("gnupg-stranger");
    std::fs::create_dir(&stranger_home).expect("mkdir");
    std::fs::set_permissions(
        &stranger_home,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    ok(
        Command::new("gpg")
            .env("GNUPGHOME", &stranger_home)
            .args([
                "--batch",
                "--passphrase",
                "",
                "--quick-gen-key",
                "stranger <s@localhost>",
            ])
            .args(["ed25519", "sign", "1d"]),
        "gpg --quick-gen-key",
    );
    let (out, _) = output(
        Command::new("gpg")
            .env("GNUPGHOME", &stranger_home)
            .args(["--batch", "--armor", "--export"]),
        "gpg --export",
    );
    let stranger = root.join("stranger.asc");
    std::fs::write(&stranger, &out.stdout).expect("write");
    fails(
        &mut install(&refused, &stranger),
        "install-platform.sh with another key",
        "the signature does not verify with PLATFORM_RELEASE_KEY",
    );
    let garbage = root.join("garbage.asc");
    std::fs::write(&garbage, "not a key\n").expect("write");
    fails(
        &mut install(&refused, &garbage),
        "install-platform.sh with no key",
        "PLATFORM_RELEASE_KEY is not a public key",
    );
    assert!(!refused.join("bin/platform-broker").exists());
    drop(mirror);
    // One access-log line per request, none with anything but the path.
    let log = std::fs::read_to_string(&mirror_log).expect("mirror log");
    assert!(
        log.contains("GET /registry.terraform.io/platform/platform/index.json 200")
            && log.contains(&format!("GET /releases/{tarball} 200"))
            && log.contains("GET /releases/..%2Fmirror.key 404")
            && log.contains(" request-7\n"),
        "mirror log:\n{log}"
    );
}
