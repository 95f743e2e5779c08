//! Certificates and rustls configurations for QUIC (ALPN `h3`).

use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::config::Verify;
use super::error::Error;

/// A server certificate chain with its key.
#[derive(Debug)]
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 of the end-entity certificate's DER (what `serverCertificateHashes` pins).
    pub sha256: [u8; 32],
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A development certificate browsers accept via `serverCertificateHashes`: ECDSA P-256,
/// valid from one day ago for 13 days in all (the limit is 14).
pub fn self_signed(names: &[String]) -> Result<Identity, Error> {
    let names = if names.is_empty() {
        vec!["localhost".to_string()]
    } else {
        names.to_vec()
    };
    let mut params = rcgen::CertificateParams::new(names)
        .map_err(|e| Error::Tls(format!("certificate names: {e}")))?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(12);
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "libwtdatagram development certificate",
    );
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| Error::Tls(format!("key generation: {e}")))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| Error::Tls(format!("self-signing: {e}")))?;
    let der = cert.der().clone();
    Ok(Identity {
        sha256: sha256(&der),
        certs: vec![der],
        key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    })
}

/// Parse a PEM certificate chain and private key.
pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<Identity, Error> {
    let certs = CertificateDer::pem_slice_iter(cert_chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("certificate PEM: {e}")))?;
    let Some(first) = certs.first() else {
        return Err(Error::Tls(
            "certificate PEM holds no CERTIFICATE block".into(),
        ));
    };
    let sha = sha256(first);
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| Error::Tls(format!("private key PEM: {e}")))?;
    // Check the key is usable (and matches a supported algorithm) now, not at handshake.
    provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| Error::Tls(format!("private key: {e}")))?;
    Ok(Identity {
        certs,
        key,
        sha256: sha,
    })
}

pub fn server_crypto(id: &Identity) -> Result<QuicServerConfig, Error> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(id.certs.clone(), id.key.clone_key())
        .map_err(|e| Error::Tls(format!("certificate and key: {e}")))?;
    cfg.alpn_protocols = vec![b"h3".to_vec()];
    QuicServerConfig::try_from(cfg).map_err(|e| Error::Tls(e.to_string()))
}

pub fn client_crypto(verify: &Verify) -> Result<QuicClientConfig, Error> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?;
    let mut cfg = match verify {
        Verify::WebPki => {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Verify::CaPem(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| Error::Tls(format!("CA PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::Tls(format!("CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(Error::Tls("CA PEM holds no CERTIFICATE block".into()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Verify::Hashes(hashes) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                hashes: Some(hashes.clone()),
                provider: provider(),
            }))
            .with_no_client_auth(),
        Verify::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                hashes: None,
                provider: provider(),
            }))
            .with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h3".to_vec()];
    QuicClientConfig::try_from(cfg).map_err(|e| Error::Tls(e.to_string()))
}

/// Trusts a certificate by the SHA-256 of its DER (or any, when `hashes` is None); the
/// handshake signature is still verified, so the peer must hold the key.
#[derive(Debug)]
struct PinnedVerifier {
    hashes: Option<Vec<[u8; 32]>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.hashes {
            None => Ok(ServerCertVerified::assertion()),
            Some(h) if h.contains(&sha256(end_entity)) => Ok(ServerCertVerified::assertion()),
            Some(_) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A SHA-256 certificate hash as 64 lowercase hexadecimal digits (what `wtd serve`
/// prints and browsers' `serverCertificateHashes` take as bytes).
pub fn sha256_hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parse a SHA-256 certificate hash written as 64 hexadecimal digits (either case,
/// surrounding whitespace and `:` separators allowed, as `openssl x509 -fingerprint`
/// prints them). The project's one hex parser: the CLI and the C ABI use it.
pub fn parse_sha256_hex(s: &str) -> Result<[u8; 32], Error> {
    let digits: Vec<u8> = s.trim().bytes().filter(|&b| b != b':').collect();
    let bad = || Error::InvalidArgument(format!("{s:?}: a SHA-256 hash is 64 hexadecimal digits"));
    if digits.len() != 64 {
        return Err(bad());
    }
    let value = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(digits.chunks(2)) {
        *o = value(pair[0]).ok_or_else(bad)? << 4 | value(pair[1]).ok_or_else(bad)?;
    }
    Ok(out)
}

#[cfg(test)]
mod hex_tests {
    use super::*;

    #[test]
    fn sha256_hex_round_trip() {
        let h: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        let text = sha256_hex(&h);
        assert_eq!(text.len(), 64);
        assert_eq!(parse_sha256_hex(&text).unwrap(), h);
        let colons: Vec<String> = h.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(
            parse_sha256_hex(&format!(" {} ", colons.join(":"))).unwrap(),
            h
        );
        for bad in ["", "00", &"0".repeat(63), &"g".repeat(64), &"0".repeat(65)] {
            assert!(
                matches!(parse_sha256_hex(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
    }
}
