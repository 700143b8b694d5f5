//! IST's estimator apart from training: the score rule against a hand computation, the
//! redrawing of repeated suppression sets, and a synthetic loss whose only dependence is on
//! two layers' scaling.

use super::ist::score_update;
use super::*;
use crate::lora::Restore;
use plies_nn::Scope;
use std::sync::Mutex;

#[test]
fn score_update_matches_a_hand_computed_step() {
    // R = (e^-1, e^-2, e^-0.5) = (0.367879441, 0.135335283, 0.606530660), mean 0.369915128,
    // r = (-0.002035687, -0.234579845, 0.236615532); p(1-p) = 0.25, 0.196611933, 0.196611933,
    // 0.235003712 for s = 0, 1, -1, 0.5. Then s_i += 10 r_k p_i (1 - p_i) over the sets holding i:
    // s0 = 0 + 10(0.25)(-0.002035687)                           = -0.005089217
    // s1 = 1 + 10(0.196611933)(-0.002035687 - 0.234579845)      =  0.534785629
    // s2 = -1 + 10(0.196611933)(-0.234579845 + 0.236615532)     = -0.995997597
    // s3 = 0.5 + 10(0.235003712)(0.236615532)                   =  1.056055283
    let scores = [0.0, 1.0, -1.0, 0.5];
    let sets = vec![vec![0, 1], vec![1, 2], vec![2, 3]];
    let (got, r) = score_update(&scores, &sets, &[1.0, 2.0, 0.5], 10.0).unwrap();
    let want = [-0.005089217, 0.534785629, -0.995997597, 1.056055283];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-8, "scores {got:?}, want {want:?}");
    }
    for (g, w) in r.iter().zip([-0.002035687, -0.234579845, 0.236615532]) {
        assert!((g - w).abs() < 1e-8, "rewards {r:?}");
    }
    assert!(score_update(&scores, &sets, &[1.0, f64::NAN, 0.5], 10.0).is_err());
    assert!(score_update(&scores, &[vec![4]], &[1.0], 10.0).is_err());
}

/// Per-layer scaling factors standing in for adapters.
struct Scales(Mutex<Vec<f64>>);

impl ScaledLayers for Scales {
    fn scaled_layers(&self, factor: f64, layers: &[usize]) -> Result<Restore<'_>> {
        let mut guard = Restore::new();
        let mut s = self.0.lock().unwrap();
        for &l in layers {
            let old = s[l];
            s[l] = old * factor;
            guard.push(move || self.0.lock().unwrap()[l] = old);
        }
        Ok(guard)
    }
}

struct NoParams;

impl Module for NoParams {
    fn visit(&self, _: &mut Scope<'_>) {}
}

#[test]
fn repeated_suppression_sets_are_redrawn() {
    // L = 3, n_sup = 2: only three sets exist, so K = 3 needs all of them and every update
    // draws some set twice.
    let cfg = IstConfig { n_upd: 1, n_sup: 2, ..IstConfig::paper(3, 7) };
    let mut ist = Ist::new(cfg.clone()).unwrap();
    let mut redraws = 0;
    for _ in 0..20 {
        let (sets, n) = ist.suppression_sets().unwrap();
        let mut sorted = sets.clone();
        sorted.sort();
        assert_eq!(sorted, vec![vec![0, 1], vec![0, 2], vec![1, 2]], "distinct sets: {sets:?}");
        redraws += n;
    }
    assert!(redraws > 0, "repeats were drawn and replaced");
    let err = Ist::new(IstConfig { probes: 4, ..cfg }).err().unwrap().to_string();
    assert!(err.contains("distinct suppression sets"), "{err}");
}

#[test]
fn a_loss_that_depends_on_layers_2_and_5_gives_them_the_lowest_scores() {
    for seed in 0..4 {
        let scales = Scales(Mutex::new(vec![1.0; 8]));
        let mut probes = 0;
        let mut probe = ScaledProbe::new(
            &NoParams,
            &scales,
            || Ok(()),
            |_: &()| {
                probes += 1;
                let s = scales.0.lock().unwrap();
                Ok(1.0 + (1.0 - s[2]) + (1.0 - s[5]))
            },
        );
        let mut ist = Ist::new(IstConfig::paper(8, seed)).unwrap();
        for step in 0..2000 {
            let chosen = ist.select(step, &mut probe).unwrap();
            assert_eq!(chosen.len(), 2);
        }
        assert_eq!(probes, 199 * 3, "K probes at steps 10, 20, ..., 1990");
        assert_eq!(*scales.0.lock().unwrap(), vec![1.0; 8], "scaling restored after every probe");
        let s = ist.scores();
        let mut order: Vec<usize> = (0..8).collect();
        order.sort_by(|&a, &b| s[a].total_cmp(&s[b]));
        let mut lowest = order[..2].to_vec();
        lowest.sort();
        assert_eq!(lowest, vec![2, 5], "seed {seed}: scores {s:?}");
    }
}

#[test]
fn a_failing_probe_restores_the_scaling_and_the_error_surfaces() {
    let scales = Scales(Mutex::new(vec![1.0; 4]));
    let mut probe = ScaledProbe::new(&NoParams, &scales, || Ok(()), |_: &()| Err(Error::msg("probe batch unreadable")));
    let mut ist = Ist::new(IstConfig { n_upd: 1, ..IstConfig::paper(4, 0) }).unwrap();
    ist.select(0, &mut probe).unwrap();
    let err = ist.select(10, &mut probe).unwrap_err().to_string();
    assert!(err.contains("unreadable"), "{err}");
    assert_eq!(*scales.0.lock().unwrap(), vec![1.0; 4]);
}

#[test]
fn selectors_are_seeded_and_draw_what_they_promise() {
    let mut a = RandomLayers::new(8, 2, 5).unwrap();
    let mut b = RandomLayers::new(8, 2, 5).unwrap();
    let mut seen = [0usize; 8];
    for step in 0..400 {
        let x = a.select(step, &mut NoProbe).unwrap();
        assert_eq!(x, b.select(step, &mut NoProbe).unwrap());
        assert!(x.len() == 2 && x[0] < x[1] && x[1] < 8);
        x.iter().for_each(|&i| seen[i] += 1);
    }
    assert!(seen.iter().all(|&n| n > 60), "uniform: {seen:?}");
    let mut lisa = Lisa::new(8, 2, 5, 1).unwrap();
    let first = lisa.select(0, &mut NoProbe).unwrap();
    for step in 1..5 {
        assert_eq!(lisa.select(step, &mut NoProbe).unwrap(), first, "LISA keeps its layers for a period");
    }
    assert_eq!(AllLayers { layers: 3 }.select(0, &mut NoProbe).unwrap(), vec![0, 1, 2]);
    assert_eq!(FixedLayers::new(vec![5, 1, 5]).select(9, &mut NoProbe).unwrap(), vec![1, 5]);
    assert!(RandomLayers::new(8, 0, 0).is_err() && Lisa::new(2, 3, 1, 0).is_err());
    // IST without a probe fails at its first score update, naming what is missing.
    let mut ist = Ist::new(IstConfig::paper(8, 0)).unwrap();
    ist.select(0, &mut NoProbe).unwrap();
    assert!(ist.select(10, &mut NoProbe).unwrap_err().to_string().contains("needs a probe"));
}
