//! Small dense linear algebra for the fits: the inverse of a symmetric positive matrix.

/// The inverse of the symmetric positive N×N matrix `m` (normal equations); `None` when
/// it is singular or not finite.
///
/// The matrix is equilibrated first (D^-½ M D^-½, D its diagonal), so columns in units far
/// apart (volts and seconds since 1970) do not pass for a singular matrix; then inverted by
/// Gauss–Jordan elimination with partial pivoting, a pivot below 1e-12 counting as zero.
pub(crate) fn invert<const N: usize>(m: [[f64; N]; N]) -> Option<[[f64; N]; N]> {
    let mut d = [0.0; N];
    for (i, di) in d.iter_mut().enumerate() {
        let x = m[i][i];
        if !(x.is_finite() && x > 0.0) {
            return None;
        }
        *di = x.sqrt();
    }
    let mut scaled = m;
    for (i, row) in scaled.iter_mut().enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            *x /= d[i] * d[j];
        }
    }
    let mut out = invert_equilibrated(scaled)?;
    for (i, row) in out.iter_mut().enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            *x /= d[i] * d[j];
        }
    }
    out.iter().flatten().all(|x| x.is_finite()).then_some(out)
}

fn invert_equilibrated<const N: usize>(m: [[f64; N]; N]) -> Option<[[f64; N]; N]> {
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

    #[test]
    fn columns_in_units_far_apart_are_not_singular() {
        // Σw [1, t − t̄] with t in seconds since 1970, a month apart, weights 1/(0.1 µV)².
        let w = 1e14;
        let t: Vec<f64> = (0..6)
            .map(|i| 1.7e9 + 86_400.0 * 30.0 * f64::from(i))
            .collect();
        let tm = t.iter().sum::<f64>() / 6.0;
        let stt: f64 = t.iter().map(|x| w * (x - tm).powi(2)).sum();
        let inv = invert([[6.0 * w, 0.0], [0.0, stt]]).expect("not singular");
        assert!((inv[1][1] * stt - 1.0).abs() < 1e-12);
        assert!((inv[0][0] * 6.0 * w - 1.0).abs() < 1e-12);
    }
}
