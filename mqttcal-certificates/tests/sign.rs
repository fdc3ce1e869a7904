//! The signed DCC, with `xmlsec1` and a key and certificate made by `openssl`: it
//! verifies, a one-digit edit makes it fail, a certificate nobody trusts fails, and without
//! its signature the document still validates against the DCC schema.

mod common;

use std::path::Path;

use common::validate;
use mqttcal_certificates::{dcc, example, without_signature, SignError, XmlSigner};
use mqttcal_testkit::{self_signed_pair as key_pair, xmlsec1};

fn signer(key: &Path, cert: &Path) -> XmlSigner {
    XmlSigner::new(xmlsec1(), key, cert)
}

#[test]
fn a_signed_dcc_verifies_and_a_changed_digit_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = key_pair(dir.path(), "lab");
    let s = signer(&key, &cert);
    let xml = dcc(&example()).unwrap();
    let signed = s.sign(&xml).unwrap();
    assert!(signed.contains("<ds:SignatureValue>"), "{signed}");
    assert!(s.verify(&signed, &cert).unwrap(), "the signed DCC verifies");
    // The signature is the root's last child; without it, the document is the DCC.
    let end = signed.trim_end();
    assert!(end.ends_with("</ds:Signature>\n</dcc:digitalCalibrationCertificate>"));
    validate(&without_signature(&signed)).unwrap();
    assert_eq!(without_signature(&signed), xml);

    let tampered = signed.replacen("<si:value>10.00001234<", "<si:value>10.00001235<", 1);
    assert_ne!(tampered, signed);
    assert!(
        !s.verify(&tampered, &cert).unwrap(),
        "a changed digit fails"
    );

    let (_, stranger) = key_pair(dir.path(), "stranger");
    assert!(
        !s.verify(&signed, &stranger).unwrap(),
        "a certificate nobody trusts fails"
    );
}

#[test]
fn signing_without_a_key_says_which_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert) = key_pair(dir.path(), "lab");
    let missing = dir.path().join("no-such-key.pem");
    let err = signer(&missing, &cert)
        .sign(&dcc(&example()).unwrap())
        .unwrap_err();
    assert!(
        matches!(&err, SignError::Tool { problem, .. } if problem.contains("no-such-key.pem")),
        "{err}"
    );
    let err = XmlSigner::new(dir.path().join("no-xmlsec1"), &cert, &cert)
        .sign(&dcc(&example()).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("install xmlsec1"), "{err}");
}
