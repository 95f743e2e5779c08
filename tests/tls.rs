//! Certificates and addresses: PEM chains signed by a custom CA, pinned hashes, IPv6.

mod common;

use common::*;
use wtdatagram::{Client, ClientConfig, Error, Server, ServerConfig, ServerTls, Verify};

/// A CA and a leaf for `localhost` / 127.0.0.1 signed by it, as PEM.
fn ca_and_leaf() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "wtd test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    (ca.pem(), leaf.pem(), leaf_key.serialize_pem())
}

#[tokio::test]
async fn pem_chain_verified_against_a_custom_ca() {
    init_log();
    let (ca, leaf, key) = ca_and_leaf();
    let server = Server::bind(ServerConfig {
        tls: ServerTls::Pem {
            cert_chain: leaf.into_bytes(),
            key: key.into_bytes(),
        },
        ..Default::default()
    })
    .unwrap();
    let port = server.local_addr().port();

    let trusting = Client::new(ClientConfig {
        verify: Verify::CaPem(ca.into_bytes()),
        ..Default::default()
    })
    .unwrap();
    let (ss, cs) = within(pair(
        &server,
        &trusting,
        &format!("https://localhost:{port}/ca"),
    ))
    .await;
    cs.send_datagram(b"signed").await.unwrap();
    assert_eq!(&within(ss.recv_datagram()).await.unwrap()[..], b"signed");

    // A client that trusts only another CA refuses the same server.
    let (other_ca, _, _) = ca_and_leaf();
    let distrusting = Client::new(ClientConfig {
        verify: Verify::CaPem(other_ca.into_bytes()),
        ..Default::default()
    })
    .unwrap();
    let err = within(distrusting.connect(&format!("https://localhost:{port}/")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls(_) | Error::Connect(_)), "{err:?}");
}

#[tokio::test]
async fn pinned_hash_must_match() {
    let server = server();
    let wrong = Client::new(ClientConfig {
        verify: Verify::Hashes(vec![[0u8; 32]]),
        ..Default::default()
    })
    .unwrap();
    let err = within(wrong.connect(&url(&server, "/"))).await.unwrap_err();
    assert!(matches!(err, Error::Tls(_) | Error::Connect(_)), "{err:?}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // The right hash works on the same server.
    let right = client_for(&server);
    within(right.connect(&url(&server, "/"))).await.unwrap();
}

#[tokio::test]
async fn bad_pem_is_a_clear_error() {
    let bad = Server::bind(ServerConfig {
        tls: ServerTls::Pem {
            cert_chain: b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
                .to_vec(),
            key: b"nothing".to_vec(),
        },
        ..Default::default()
    });
    assert!(matches!(bad, Err(Error::Tls(_))), "{bad:?}");
    let no_cert = Server::bind(ServerConfig {
        tls: ServerTls::Pem {
            cert_chain: Vec::new(),
            key: Vec::new(),
        },
        ..Default::default()
    });
    assert!(
        matches!(no_cert, Err(Error::Tls(ref m)) if m.contains("no CERTIFICATE")),
        "{no_cert:?}"
    );
}

#[tokio::test]
async fn ipv6_loopback_both_roles() {
    init_log();
    let server = match Server::bind(ServerConfig {
        bind: "[::1]:0".parse().unwrap(),
        ..Default::default()
    }) {
        Ok(s) => s,
        Err(e) => panic!("binding [::1]:0 failed ({e}); this machine has IPv6 loopback"),
    };
    assert!(server.local_addr().is_ipv6());
    let client = client_for(&server);
    let (ss, cs) = within(pair(
        &server,
        &client,
        &format!("https://[::1]:{}/v6", server.local_addr().port()),
    ))
    .await;
    assert_eq!(
        ss.request().authority,
        format!("[::1]:{}", server.local_addr().port())
    );
    ss.send_datagram(b"over v6").await.unwrap();
    assert_eq!(&within(cs.recv_datagram()).await.unwrap()[..], b"over v6");
    assert!(cs.remote_addr().is_ipv6());
}

#[tokio::test]
async fn port_zero_reports_the_bound_port_and_self_signed_hash_is_stable() {
    let server = server();
    assert_ne!(server.local_addr().port(), 0);
    let h1 = server.cert_sha256();
    assert_eq!(h1, server.cert_sha256());
    assert_ne!(h1, [0u8; 32]);
    // Two servers get two different certificates.
    assert_ne!(h1, common::server().cert_sha256());
}
