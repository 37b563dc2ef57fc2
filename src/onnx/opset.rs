//! The opsets a model imports. Each domain is imported once: a model importing the default
//! domain at two opsets (as `""` and `"ai.onnx"`, which name the same domain, or twice under one
//! name) does not say which one its nodes follow, and runtimes do not agree on it (onnxruntime
//! takes the older), so such a model is refused on load rather than written with the question
//! left open.

use super::proto::OperatorSetIdProto;
use crate::shown::shown;
use anyhow::{bail, Result};

/// Whether `domain` names the default ONNX domain (`""`, absent, or `"ai.onnx"`).
pub fn is_default_domain(domain: Option<&str>) -> bool {
    matches!(domain, None | Some("") | Some("ai.onnx"))
}

/// The opset of the default domain among `imports`, if it is imported with a version.
pub fn default_opset(imports: &[OperatorSetIdProto]) -> Option<i64> {
    imports
        .iter()
        .find(|o| is_default_domain(o.domain.as_deref()))
        .and_then(|o| o.version)
}

/// Refuses a domain imported at two different opsets (an import repeated with the same version
/// says nothing new and is kept).
pub fn check_imports(imports: &[OperatorSetIdProto]) -> Result<()> {
    let key = |o: &OperatorSetIdProto| {
        if is_default_domain(o.domain.as_deref()) {
            None
        } else {
            o.domain.clone()
        }
    };
    let version = |o: &OperatorSetIdProto| o.version.map_or("no version".into(), |v| v.to_string());
    for (i, a) in imports.iter().enumerate() {
        let Some(b) = imports[..i]
            .iter()
            .find(|b| key(b) == key(a) && b.version != a.version)
        else {
            continue;
        };
        match key(a) {
            None => bail!(
                "imports the default domain (\"\" and \"ai.onnx\" name it) at two opsets, {} and \
                 {}: runtimes differ on which its nodes follow; keep one import",
                version(b),
                version(a)
            ),
            Some(d) => bail!(
                "imports domain '{}' at two opsets, {} and {}: keep one import",
                shown(&d),
                version(b),
                version(a)
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(domain: Option<&str>, version: i64) -> OperatorSetIdProto {
        OperatorSetIdProto {
            domain: domain.map(String::from),
            version: Some(version),
        }
    }

    #[test]
    fn one_import_per_domain_passes() {
        let imports = [import(Some(""), 13), import(Some("com.microsoft"), 1)];
        assert!(check_imports(&imports).is_ok());
        assert_eq!(default_opset(&imports), Some(13));
        // The same import twice leaves no doubt.
        assert!(check_imports(&[import(Some(""), 13), import(Some("ai.onnx"), 13)]).is_ok());
    }

    #[test]
    fn the_default_domain_at_two_opsets_is_refused() {
        let expected = "imports the default domain (\"\" and \"ai.onnx\" name it) at two opsets, \
                        13 and 11: runtimes differ on which its nodes follow; keep one import";
        for second in [None, Some(""), Some("ai.onnx")] {
            let e = check_imports(&[import(Some(""), 13), import(second, 11)]).unwrap_err();
            assert_eq!(e.to_string(), expected);
        }
        let e = check_imports(&[import(Some("ai.onnx"), 13), import(Some(""), 11)]).unwrap_err();
        assert_eq!(e.to_string(), expected);
    }

    #[test]
    fn another_domain_at_two_opsets_is_refused() {
        let e = check_imports(&[
            import(Some("com.microsoft"), 1),
            import(Some(""), 13),
            import(Some("com.microsoft"), 2),
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "imports domain 'com.microsoft' at two opsets, 1 and 2: keep one import"
        );
    }
}
