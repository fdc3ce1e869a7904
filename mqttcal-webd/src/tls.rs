//! webd's TLS: a certificate and key from configuration, or a self-signed pair made once
//! and kept for the demo.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("webd's TLS: {0}")]
pub struct TlsError(pub String);

/// The server's TLS configuration from PEM files `cert` (the chain, leaf first) and `key`.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!("{}: no certificate", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError(format!("the certificate and key do not go together: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The self-signed pair in `dir` (`webd-cert.pem`, `webd-key.pem`), made for `names` (host
/// names or addresses) when it is not there yet or was made for other names; returns the
/// certificate's and the key's paths.
pub fn self_signed(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert = dir.join("webd-cert.pem");
    let key = dir.join("webd-key.pem");
    // The names it was made for: other names make a new pair, or browsers would refuse it.
    let made_for = dir.join("webd-cert.names");
    let names_text = names.join("\n");
    let same_names = std::fs::read_to_string(&made_for).is_ok_and(|t| t == names_text);
    if cert.exists() && key.exists() && same_names {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir).map_err(|e| TlsError(format!("{}: {e}", dir.display())))?;
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError(format!("cannot make a certificate: {e}")))?;
    crate::users::write_private(&key, made.key_pair.serialize_pem().as_bytes())
        .map_err(|e| TlsError(format!("{}: {e}", key.display())))?;
    std::fs::write(&cert, made.cert.pem())
        .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?;
    std::fs::write(&made_for, names_text)
        .map_err(|e| TlsError(format!("{}: {e}", made_for.display())))?;
    tracing::info!(
        cert = %cert.display(),
        "webd made a self-signed certificate: browsers warn about it; give `tls_cert` and `tls_key` in production"
    );
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_pair_is_kept_and_made_again_for_other_names() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned()];
        let (cert, key) = self_signed(dir.path(), &names).unwrap();
        let first = std::fs::read(&cert).unwrap();
        server_config(&cert, &key).unwrap();
        self_signed(dir.path(), &names).unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), first, "kept");
        self_signed(dir.path(), &["lab.example".to_owned()]).unwrap();
        assert_ne!(std::fs::read(&cert).unwrap(), first, "made again");
        let e = server_config(&cert, &dir.path().join("nothing.pem")).unwrap_err();
        assert!(e.to_string().contains("nothing.pem"), "{e}");
    }
}
