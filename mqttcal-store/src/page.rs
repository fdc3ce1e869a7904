//! Paging of queries: `limit` and `offset` as SQL takes them.

use crate::StoreError;

/// The `limit` (`default` when not given; 1 to 10000) and `offset` of a paged query.
pub(crate) fn page(
    limit: Option<u32>,
    offset: Option<u64>,
    default: u32,
) -> Result<(i64, i64), StoreError> {
    let limit = match limit.unwrap_or(default) {
        n @ 1..=10_000 => i64::from(n),
        _ => return Err(StoreError::Invalid("`limit` must be 1 to 10000".into())),
    };
    let offset = i64::try_from(offset.unwrap_or(0))
        .map_err(|_| StoreError::Invalid("`offset` is too large".into()))?;
    Ok((limit, offset))
}

#[cfg(test)]
mod tests {
    #[test]
    fn paging_is_checked() {
        let q = |l, o| super::page(l, o, 100);
        assert_eq!(q(None, None).unwrap(), (100, 0));
        assert!(matches!(
            q(Some(0), None),
            Err(crate::StoreError::Invalid(_))
        ));
        assert!(matches!(
            q(Some(10_001), None),
            Err(crate::StoreError::Invalid(_))
        ));
        assert!(matches!(
            q(None, Some(u64::MAX)),
            Err(crate::StoreError::Invalid(_))
        ));
        assert_eq!(q(Some(10), Some(20)).unwrap(), (10, 20));
    }
}
