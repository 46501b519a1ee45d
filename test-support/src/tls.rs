//! Certificates for TLS servers, generated fresh for each server.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// Whether a TLS server asks its clients for a certificate
/// (`--tls-auth-clients`).
///
/// ```no_run
/// use cache_test_support::{ClientAuth, RedisServer};
///
/// // Mutual TLS: a client must present a certificate signed by the test CA.
/// let server = RedisServer::start_tls_with(ClientAuth::Required, &[]);
/// let (cert, key) = (server.client_cert_file(), server.client_key_file());
/// # let _ = (cert, key);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for (`--tls-auth-clients no`).
    No,
    /// A client may present a certificate, which must then be signed by the
    /// test CA; a client without one is served too
    /// (`--tls-auth-clients optional`).
    Optional,
    /// Every client must present a certificate signed by the test CA
    /// (`--tls-auth-clients yes`).
    Required,
}

impl ClientAuth {
    /// The value of `--tls-auth-clients`.
    pub(crate) fn arg(self) -> &'static str {
        match self {
            ClientAuth::No => "no",
            ClientAuth::Optional => "optional",
            ClientAuth::Required => "yes",
        }
    }
}

/// The PEM files of one TLS server, in its directory's `tls/` folder.
#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    /// The test CA, which signed the server and client certificates.
    pub(crate) ca: PathBuf,
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
    pub(crate) client_cert: PathBuf,
    pub(crate) client_key: PathBuf,
    /// A CA that signed nothing the server trusts or presents.
    pub(crate) other_ca: PathBuf,
    /// A client certificate signed by `other_ca`.
    pub(crate) other_client_cert: PathBuf,
    pub(crate) other_client_key: PathBuf,
}

/// Subject names of the server certificate: what clients connect to.
pub(crate) const SERVER_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

impl TlsFiles {
    /// Generates a test CA, a server certificate for [`SERVER_NAMES`] and a
    /// client certificate signed by it, and an unrelated CA with a client
    /// certificate of its own, and writes them under `dir/tls/`.
    #[track_caller]
    pub(crate) fn generate(dir: &Path) -> TlsFiles {
        match generate(&dir.join("tls")) {
            Ok(files) => files,
            Err(err) => panic!("cannot generate the TLS test certificates: {err}"),
        }
    }
}

fn generate(dir: &Path) -> Result<TlsFiles, Box<dyn std::error::Error>> {
    fs::create_dir_all(dir)?;
    let file = |name: &str| dir.join(name);
    let files = TlsFiles {
        ca: file("ca.crt"),
        server_cert: file("server.crt"),
        server_key: file("server.key"),
        client_cert: file("client.crt"),
        client_key: file("client.key"),
        other_ca: file("other-ca.crt"),
        other_client_cert: file("other-client.crt"),
        other_client_key: file("other-client.key"),
    };

    let (ca_cert, ca) = certificate_authority("cache-test-support CA")?;
    fs::write(&files.ca, ca_cert.pem())?;
    // The server's certificate also serves as its client certificate
    // (replication, cluster bus), hence both purposes.
    let (server_cert, server_key) = leaf(
        "cache-test-support server",
        &SERVER_NAMES,
        &[
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        &ca,
    )?;
    fs::write(&files.server_cert, server_cert.pem())?;
    fs::write(&files.server_key, server_key.serialize_pem())?;
    let (client_cert, client_key) = leaf(
        "cache-test-support client",
        &[],
        &[ExtendedKeyUsagePurpose::ClientAuth],
        &ca,
    )?;
    fs::write(&files.client_cert, client_cert.pem())?;
    fs::write(&files.client_key, client_key.serialize_pem())?;

    let (other_ca_cert, other_ca) = certificate_authority("cache-test-support unrelated CA")?;
    fs::write(&files.other_ca, other_ca_cert.pem())?;
    let (other_cert, other_key) = leaf(
        "cache-test-support untrusted client",
        &[],
        &[ExtendedKeyUsagePurpose::ClientAuth],
        &other_ca,
    )?;
    fs::write(&files.other_client_cert, other_cert.pem())?;
    fs::write(&files.other_client_key, other_key.serialize_pem())?;
    Ok(files)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "cache-test-support");
    name.push(DnType::CommonName, common_name);
    name
}

/// A self-signed CA certificate, and the issuer that signs with its key.
fn certificate_authority(
    common_name: &str,
) -> Result<(Certificate, Issuer<'static, KeyPair>), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::new())?;
    params.distinguished_name = name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    Ok((cert, Issuer::new(params, key)))
}

/// A certificate for a new key, signed by `issuer`.
fn leaf(
    common_name: &str,
    subject_alt_names: &[&str],
    purposes: &[ExtendedKeyUsagePurpose],
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(Certificate, KeyPair), rcgen::Error> {
    let key = KeyPair::generate()?;
    let names: Vec<String> = subject_alt_names.iter().map(ToString::to_string).collect();
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name = name(common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = purposes.to_vec();
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::TempDir;

    /// Whether `haystack` contains `needle` as a contiguous run of bytes.
    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack
            .windows(needle.len())
            .any(|window| window == needle)
    }

    #[test]
    fn server_certificate_names_loopback_and_localhost() {
        let (_, ca) = certificate_authority("test CA").unwrap();
        let purposes = [ExtendedKeyUsagePurpose::ServerAuth];
        let (cert, _) = leaf("server", &SERVER_NAMES, &purposes, &ca).unwrap();
        let der: &[u8] = cert.der();
        // subjectAltName entries: iPAddress [7] 127.0.0.1 and dNSName [2].
        assert!(contains(der, &[0x87, 4, 127, 0, 0, 1]), "no IP SAN");
        assert!(contains(der, b"\x82\x09localhost"), "no DNS SAN");
    }

    #[test]
    fn writes_pem_files_under_tls() {
        let dir = TempDir::create();
        let files = TlsFiles::generate(dir.path());
        let certs = [
            &files.ca,
            &files.server_cert,
            &files.client_cert,
            &files.other_ca,
            &files.other_client_cert,
        ];
        for cert in certs {
            assert!(cert.starts_with(dir.path().join("tls")), "{cert:?}");
            let pem = fs::read_to_string(cert).unwrap();
            assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{cert:?}");
        }
        for key in [
            &files.server_key,
            &files.client_key,
            &files.other_client_key,
        ] {
            let pem = fs::read_to_string(key).unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{key:?}");
        }
        // Fresh keys: the two CAs differ.
        assert_ne!(
            fs::read(&files.ca).unwrap(),
            fs::read(&files.other_ca).unwrap()
        );
    }
}
