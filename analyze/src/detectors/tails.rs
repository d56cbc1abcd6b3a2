//! Tail probabilities the detectors turn into scores: the normal, Poisson
//! and beta-binomial upper tails, on a log10 scale so that very unlikely
//! points stay ordered (a score of 1 is a tail of 1e-12).

/// Standard normal upper tail, Q(z) = P(Z > z) (Abramowitz-Stegun 7.1.26
/// through erfc; absolute error below 1.5e-7).
pub fn normal_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * x.abs());
    let y = t
        * (0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erfc = y * (-x * x).exp();
    let erfc = if x >= 0.0 { erfc } else { 2.0 - erfc };
    0.5 * erfc
}

/// log10 of [`normal_tail`], accurate far into the tail (asymptotic
/// expansion beyond z = 5, where the direct formula loses precision).
pub fn log10_normal_tail(z: f64) -> f64 {
    if z < 5.0 {
        return normal_tail(z).max(1e-300).log10();
    }
    let ln_q = -z * z / 2.0 - z.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
        + (1.0 - 1.0 / (z * z) + 3.0 / z.powi(4)).ln();
    ln_q / std::f64::consts::LN_10
}

/// log10 of P(X >= k) for X ~ Poisson(lambda).
pub fn log10_poisson_tail(k: u64, lambda: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    // Sum the pmf from k upward in log space until the terms vanish.
    let ln_pmf = |j: u64| -lambda + j as f64 * lambda.ln() - ln_factorial(j);
    let first = ln_pmf(k);
    let mut sum = 1.0;
    let mut term = 1.0;
    let mut j = k;
    while term > 1e-12 && j < k + 10_000 {
        j += 1;
        term *= lambda / j as f64;
        sum += term;
    }
    ((first + sum.ln()) / std::f64::consts::LN_10).min(0.0)
}

fn ln_factorial(n: u64) -> f64 {
    if n < 20 {
        (1..=n).map(|i| (i as f64).ln()).sum()
    } else {
        // Stirling with the 1/(12n) term: plenty for a tail probability.
        let n = n as f64;
        n * n.ln() - n + 0.5 * (2.0 * std::f64::consts::PI * n).ln() + 1.0 / (12.0 * n)
    }
}

/// log10 of P(X >= k) for X ~ BetaBinomial(n, a, b).
pub fn log10_beta_binomial_tail(k: u64, n: u64, a: f64, b: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    if k > n {
        return f64::NEG_INFINITY;
    }
    let ln_beta = |x: f64, y: f64| ln_gamma(x) + ln_gamma(y) - ln_gamma(x + y);
    let ln_choose = |n: u64, j: u64| ln_factorial(n) - ln_factorial(j) - ln_factorial(n - j);
    let ln_pmf =
        |j: u64| ln_choose(n, j) + ln_beta(j as f64 + a, (n - j) as f64 + b) - ln_beta(a, b);
    // Sum from k upward in log space; terms fall off fast past the mode.
    let first = ln_pmf(k);
    let mut sum = 1.0;
    for j in k + 1..=n {
        let term = (ln_pmf(j) - first).exp();
        sum += term;
        if term < 1e-12 * sum {
            break;
        }
    }
    ((first + sum.ln()) / std::f64::consts::LN_10).min(0.0)
}

/// log10 of P(T > t) for Student's t with `nu` degrees of freedom,
/// through the regularised incomplete beta function
/// (P(T > t) = I_x(nu/2, 1/2) / 2 with x = nu / (nu + t^2)), its continued
/// fraction evaluated by Lentz's method (Numerical Recipes 6.4), in log
/// space so that far tails stay ordered. For t <= 0 the tail is at least a
/// half and this returns log10 of it.
pub fn log10_student_t_tail(t: f64, nu: f64) -> f64 {
    if !t.is_finite() {
        return if t > 0.0 { f64::NEG_INFINITY } else { 0.0 };
    }
    let (a, b) = (nu / 2.0, 0.5);
    let x = nu / (nu + t * t);
    let ln_front = a * x.ln() + b * (1.0 - x).ln() - (ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b));
    // ln I_x(a, b): directly where the fraction converges fast, else
    // through I_x(a, b) = 1 - I_{1-x}(b, a).
    let ln_i = if x < (a + 1.0) / (a + b + 2.0) {
        ln_front + beta_fraction(a, b, x).ln() - a.ln()
    } else {
        let other = (ln_front + beta_fraction(b, a, 1.0 - x).ln() - b.ln()).exp();
        (1.0 - other).max(1e-300).ln()
    };
    let ln_upper = ln_i + 0.5f64.ln();
    let ln_tail = if t >= 0.0 {
        ln_upper
    } else {
        (1.0 - ln_upper.exp()).max(1e-300).ln()
    };
    (ln_tail / std::f64::consts::LN_10).min(0.0)
}

/// The continued fraction of the incomplete beta function (Numerical
/// Recipes' `betacf`, modified Lentz).
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let fix = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / fix(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / fix(1.0 + aa * d);
        c = fix(1.0 + aa / c);
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / fix(1.0 + aa * d);
        c = fix(1.0 + aa / c);
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-13 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, nine terms: about 15 digits).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against closed forms and tables: Cauchy (one degree) P(T > 1) =
    /// 1/4 and P(T > t) = 1/2 - atan(t)/pi far out; t(4) 0.975 quantile
    /// 2.776; many degrees tend to the normal.
    #[test]
    fn student_t_tail_is_accurate() {
        let p = |t: f64, nu: f64| 10f64.powf(log10_student_t_tail(t, nu));
        assert!((p(1.0, 1.0) - 0.25).abs() < 1e-9);
        let cauchy = 0.5 - (1000.0f64).atan() / std::f64::consts::PI;
        assert!((p(1000.0, 1.0) / cauchy - 1.0).abs() < 1e-6);
        assert!((p(2.776445, 4.0) - 0.025).abs() < 1e-6);
        assert!((p(0.0, 7.0) - 0.5).abs() < 1e-9);
        assert!((p(-2.776445, 4.0) - 0.975).abs() < 1e-6);
        let (z, big) = (4.0, 1e6);
        assert!((log10_student_t_tail(z, big) - log10_normal_tail(z)).abs() < 1e-3);
        // Ordered far into the tail, where the plain probability is 0.
        assert!(log10_student_t_tail(1e8, 9.0) < log10_student_t_tail(1e7, 9.0));
        assert!(log10_student_t_tail(1e8, 9.0) < -60.0);
    }

    #[test]
    fn normal_tail_is_accurate() {
        assert!((normal_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_tail(1.96) - 0.025).abs() < 1e-4);
        assert!((normal_tail(-1.96) - 0.975).abs() < 1e-4);
        // Continuous across the switch to the asymptotic form.
        assert!((log10_normal_tail(4.999) - log10_normal_tail(5.0)).abs() < 0.02);
        assert!((log10_normal_tail(10.0) - (-23.12)).abs() < 0.05);
    }
}
