//! TLS settings for the MQTT transport (rustls with the ring provider).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::TransportError;
use crate::config::MqttConfig;

fn config_error(problem: String) -> TransportError {
    TransportError::Config {
        problem,
        source: None,
    }
}

/// A configuration problem caused by `e`.
fn caused(problem: String, e: impl std::error::Error + Send + Sync + 'static) -> TransportError {
    TransportError::Config {
        problem,
        source: Some(Arc::new(e)),
    }
}

/// Builds the rustls client configuration from the `mqtt` settings.
pub(super) fn client_config(cfg: &MqttConfig) -> Result<ClientConfig, TransportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| caused("no TLS protocol version in common".into(), e))?;
    let builder = if cfg.secure {
        let mut roots = RootCertStore::empty();
        match &cfg.ca_cert {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        caused(
                            format!("cannot read CA certificate `{}`", path.display()),
                            e,
                        )
                    })?;
                if certs.is_empty() {
                    return Err(config_error(format!(
                        "no certificate in CA file `{}`",
                        path.display()
                    )));
                }
                for c in certs {
                    roots.add(c).map_err(|e| {
                        caused(format!("bad CA certificate `{}`", path.display()), e)
                    })?;
                }
            }
            None => {
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(c);
                }
            }
        }
        builder.with_root_certificates(roots)
    } else {
        tracing::warn!(
            "mqtt.secure is false: the broker's certificate and host name are NOT verified"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    };
    match (&cfg.client_cert, &cfg.client_key) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    caused(
                        format!("cannot read client certificate `{}`", cert.display()),
                        e,
                    )
                })?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| caused(format!("cannot read client key `{}`", key.display()), e))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| caused("bad client certificate or key".into(), e))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(config_error(
            "`mqtt.client-cert` and `mqtt.client-key` go together".into(),
        )),
    }
}

/// A readable reason when a TLS failure is one that retrying cannot fix.
/// `None` when the handshake failed underneath TLS (a reset, a closed socket): worth a retry.
pub(super) fn describe_failure(e: &std::io::Error) -> Option<String> {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())?;
    use rustls::CertificateError as C;
    Some(match rustls_error {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "the broker's certificate is not trusted: it is signed by a CA that `mqtt.ca-cert` (`--ca-cert`, `MQTTCAL_CA_CERT`) does not hold, or, with none given, that this system does not trust: give the CA that signed it (docs/deploying.md shows how to make a CA and a broker certificate)".into()
        }
        rustls::Error::InvalidCertificate(C::BadSignature) => {
            "the broker's certificate does not carry a valid signature of the CA in `mqtt.ca-cert`: the CA was made again with the same name (a new key), or the broker's certificate comes from another CA: give the CA that signed it".into()
        }
        rustls::Error::InvalidCertificate(C::NotValidForName)
        | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => {
            "the broker's certificate does not match the host name in the broker URL: connect with a name its subjectAltName lists, or reissue it with `subjectAltName = DNS:<host>` (or `IP:<address>`)".into()
        }
        rustls::Error::InvalidCertificate(C::Expired)
        | rustls::Error::InvalidCertificate(C::ExpiredContext { .. }) => {
            "the broker's certificate has expired: renew it (and check this machine's clock)".into()
        }
        other if format!("{other:?}").contains("CaUsedAsEndEntity") => {
            "the broker presents a CA certificate (basicConstraints CA:TRUE) as its own: make a server certificate signed by that CA, without CA:TRUE, and give the broker that one (docs/deploying.md shows how)".into()
        }
        other => format!("{other}"),
    })
}

/// A configuration that accepts any certificate, for finding out whether a port speaks
/// TLS at all (nothing is sent over it).
pub(super) fn probe_config() -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        .with_no_client_auth())
}

/// Accepts any server certificate (`mqtt.secure: false`), still checking signatures.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
