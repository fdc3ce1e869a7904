//! Small dense linear algebra for the fits: the inverse of a symmetric positive matrix.

/// The inverse of the N×N matrix `m` by Gauss–Jordan elimination with partial pivoting;
/// `None` when it is singular (a pivot below `1e-12` of the largest entry).
pub(crate) fn invert<const N: usize>(m: [[f64; N]; N]) -> Option<[[f64; N]; N]> {
    let scale = m.iter().flatten().fold(0.0f64, |acc, x| acc.max(x.abs()));
    if scale == 0.0 || !scale.is_finite() {
        return None;
    }
    let mut a = m;
    let mut inv = [[0.0; N]; N];
    for (i, row) in inv.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for col in 0..N {
        let pivot = (col..N).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() <= 1e-12 * scale {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let p = a[col][col];
        for j in 0..N {
            a[col][j] /= p;
            inv[col][j] /= p;
        }
        for row in 0..N {
            if row != col {
                let f = a[row][col];
                if f != 0.0 {
                    for j in 0..N {
                        a[row][j] -= f * a[col][j];
                        inv[row][j] -= f * inv[col][j];
                    }
                }
            }
        }
    }
    Some(inv)
}

/// m·v.
pub(crate) fn apply<const N: usize>(m: &[[f64; N]; N], v: &[f64; N]) -> [f64; N] {
    let mut out = [0.0; N];
    for (o, row) in out.iter_mut().zip(m) {
        *o = row.iter().zip(v).map(|(a, b)| a * b).sum();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn inverts_and_refuses_singular() {
        let m = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]];
        let inv = invert(m).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let x: f64 = (0..3).map(|k| m[i][k] * inv[k][j]).sum();
                assert!((x - f64::from(u8::from(i == j))).abs() < 1e-12);
            }
        }
        assert!(invert([[1.0, 2.0], [2.0, 4.0]]).is_none());
    }
}
