//! One server-certificate verifier for every TLS client the provider crate
//! builds: the PostgreSQL driver (`sslmode` require / verify-ca) and the
//! protocol bench's client side of Terraform's plugin channel (a pinned
//! certificate). Host-name checking (`verify-full`) uses rustls's own webpki
//! verifier and does not come here.
//!
//! Whatever the certificate check, the handshake signatures are always
//! verified, so the server must hold the key of the certificate it sent.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// What the server's certificate must be.
#[derive(Debug)]
pub enum ServerCheck {
    /// Any certificate (libpq's `require` without a root).
    Any,
    /// Exactly this DER certificate, byte for byte.
    Pinned(Vec<u8>),
    /// A chain to one of these roots; the host name is not compared (libpq's
    /// `verify-ca`).
    ChainTo(Arc<RootCertStore>),
}

#[derive(Debug)]
pub struct ServerVerifier {
    check: ServerCheck,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerVerifier {
    pub fn new(check: ServerCheck, algorithms: WebPkiSupportedAlgorithms) -> ServerVerifier {
        ServerVerifier { check, algorithms }
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.check {
            ServerCheck::Any => {}
            ServerCheck::Pinned(der) => {
                if end_entity.as_ref() != der.as_slice() {
                    return Err(rustls::Error::InvalidCertificate(
                        rustls::CertificateError::ApplicationVerificationFailure,
                    ));
                }
            }
            ServerCheck::ChainTo(roots) => {
                let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_cert_signed_by_trust_anchor(
                    &cert,
                    roots,
                    intermediates,
                    now,
                    self.algorithms.all,
                )?;
            }
        }
        Ok(ServerCertVerified::assertion())
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
