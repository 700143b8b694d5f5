//! Device selection from `PLIES_DEVICE` (passed explicitly here: the environment is shared
//! by all tests of a binary).

use plies::core::{Device, Error};

#[test]
fn explicit_settings() {
    assert_eq!(plies::choose_device(Some("cpu")).unwrap(), Device::Cpu);
    assert_eq!(plies::choose_device(Some(" CPU ")).unwrap(), Device::Cpu);
    let e = plies::choose_device(Some("tpu")).unwrap_err();
    assert_eq!(e.to_string(), "bad device `tpu`: expected cpu, gpu or gpu:N");
    // A GPU index past the adapters names the setting and lists what exists.
    let n = plies::shaders::adapters().len();
    let e = plies::choose_device(Some(&format!("gpu:{}", n + 3))).unwrap_err();
    assert!(matches!(e, Error::NoDevice { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("PLIES_DEVICE=gpu:{}", n + 3)), "{msg}");
    if n > 0 {
        assert!(msg.contains("gpu:0 "), "lists the adapters: {msg}");
        // `gpu` is adapter 0 even when it is a software one: asked for by name.
        assert_eq!(plies::choose_device(Some("gpu")).unwrap(), Device::Gpu(0));
    }
}

#[test]
fn default_is_a_real_gpu_or_the_cpu() {
    let chosen = plies::choose_device(None).unwrap();
    match plies::shaders::best_real_gpu() {
        Some(i) => assert_eq!(chosen, Device::Gpu(i)),
        None => assert_eq!(chosen, Device::Cpu, "software adapters are never the default"),
    }
    // Adapters are listed best first: no software adapter before a real GPU.
    let list = plies::shaders::adapters();
    if let Some(first_soft) = list.iter().position(|a| a.is_software()) {
        assert!(list[first_soft..].iter().all(|a| a.is_software()), "real GPUs come first");
    }
}
