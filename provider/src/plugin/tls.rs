//! AutoMTLS as Terraform's go-plugin client expects it.
//!
//! Terraform generates a throwaway client certificate (ECDSA P-521, self-signed,
//! CA:TRUE) and hands it to us in `PLUGIN_CLIENT_CERT`; we answer with our own
//! throwaway server certificate on the handshake line. A stock webpki verifier
//! rejects the client certificate (a CA used as an end entity), so we pin its
//! exact DER bytes instead: the only peer we accept is the process that started
//! us. The handshake signature is still verified. Go silently sends no
//! certificate at all when the server does not advertise a scheme it can use,
//! so ECDSA P-521/SHA-512 must be on offer; ring cannot verify it, and
//! aws-lc-rs can but seeds its RNG with CPU jitter entropy at start-up (~40 ms
//! measured, paid by each of the 3–5 provider processes per Terraform
//! command). So TLS runs on ring, and P-521 verification alone comes from the
//! pure-Rust `p521` crate (`P521Sha512` below).

use std::sync::Arc;

use base64::Engine as _;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, PrivateKeyDer, PrivatePkcs8KeyDer,
    SignatureVerificationAlgorithm, UnixTime, alg_id,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// A freshly generated server certificate and the TLS configuration built on it.
pub struct ServerTls {
    /// The DER certificate, for the handshake line.
    pub cert_der: Vec<u8>,
    pub config: Arc<rustls::ServerConfig>,
}

impl ServerTls {
    /// The certificate as the handshake line carries it: standard base64
    /// **without padding** (go-plugin decodes with RawStdEncoding).
    pub fn handshake_cert(&self) -> String {
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&self.cert_der)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("PLUGIN_CLIENT_CERT holds no PEM certificate")]
    NoClientCert,
    #[error("generating the server certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("building the TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds the server side of AutoMTLS for the client certificate PEM found in
/// `PLUGIN_CLIENT_CERT`.
pub fn server_tls(client_cert_pem: &str) -> Result<ServerTls, TlsError> {
    let client_der = first_pem_certificate(client_cert_pem).ok_or(TlsError::NoClientCert)?;

    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.distinguished_name.push(
        rcgen::DnType::OrganizationName,
        "terraform-provider-platform",
    );
    // Mirrors go-plugin's own certificates: self-signed, usable as its own root.
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::KeyAgreement,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.self_signed(&key)?;
    let cert_der = cert.der().to_vec();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedClientCert {
        der: client_der,
        algorithms: with_p521(provider.signature_verification_algorithms),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    // grpc-go >= 1.67 (Terraform >= 1.12) refuses TLS without ALPN h2.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(ServerTls {
        cert_der,
        config: Arc::new(config),
    })
}

/// ring's verification algorithms plus ECDSA P-521/SHA-512 (the scheme of
/// Terraform's client certificate). Built once per process; the tables must be
/// `'static` for rustls, hence the leak of a few hundred bytes.
pub fn with_p521(ring: WebPkiSupportedAlgorithms) -> WebPkiSupportedAlgorithms {
    static P521: P521Sha512 = P521Sha512;
    static P521_ONLY: [&dyn SignatureVerificationAlgorithm; 1] = [&P521];
    let mut all: Vec<&'static dyn SignatureVerificationAlgorithm> = ring.all.to_vec();
    all.push(&P521);
    let mut mapping: Vec<(
        SignatureScheme,
        &'static [&'static dyn SignatureVerificationAlgorithm],
    )> = ring.mapping.to_vec();
    mapping.insert(0, (SignatureScheme::ECDSA_NISTP521_SHA512, &P521_ONLY));
    WebPkiSupportedAlgorithms {
        all: Vec::leak(all),
        mapping: Vec::leak(mapping),
    }
}

/// ECDSA over P-521 with SHA-512, as webpki's algorithm trait wants it.
#[derive(Debug)]
struct P521Sha512;

impl SignatureVerificationAlgorithm for P521Sha512 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        use p521::ecdsa::signature::Verifier as _;
        let key =
            p521::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let signature =
            p521::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        key.verify(message, &signature)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P521
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA512
    }
}

/// Decodes the first `CERTIFICATE` block of a PEM text.
fn first_pem_certificate(pem: &str) -> Option<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN)? + BEGIN.len();
    let len = pem[start..].find(END)?;
    let body: String = pem[start..start + len]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Accepts exactly one client certificate, byte for byte.
#[derive(Debug)]
struct PinnedClientCert {
    der: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.der.as_slice() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_cert_has_no_padding_and_round_trips() {
        let client =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("client cert");
        let tls = server_tls(&client.cert.pem()).expect("server tls");
        let text = tls.handshake_cert();
        assert!(!text.ends_with('='));
        let back = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(&text)
            .expect("decodes");
        assert_eq!(back, tls.cert_der);
        assert_eq!(tls.config.alpn_protocols, vec![b"h2".to_vec()]);
    }

    #[test]
    fn pem_without_certificate_is_an_error() {
        assert!(matches!(
            server_tls("not a pem"),
            Err(TlsError::NoClientCert)
        ));
    }
}
