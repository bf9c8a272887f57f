//! `unmix_data::pil` against the installed Pillow, byte for byte: `docs/reference/pil_augment.py`
//! applies torchvision's PIL-path ops (or, without torchvision, the Pillow calls they make) to
//! random RGB images with random parameters; every case must come out identical here. Skipped
//! with a message when `python3` with Pillow and numpy is absent.

use std::path::PathBuf;

use unmix_data::pil::{self, Rgb8};

fn pillow_available() -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", "import PIL, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!(
            "skipped: python3 with Pillow and numpy is not installed (pip install pillow numpy)"
        );
    }
    found
}

#[test]
fn pil_ops_give_pillows_bytes() {
    if !pillow_available() {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::env::temp_dir().join(format!("unmix-pil-{}.json", std::process::id()));
    let run = std::process::Command::new("python3")
        .arg(root.join("docs/reference/pil_augment.py"))
        .arg(&out)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&run.stdout).to_string() + &String::from_utf8_lossy(&run.stderr);
    println!("{text}");
    assert!(run.status.success(), "{text}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    std::fs::remove_file(&out).ok();
    let cases = json["cases"].as_array().unwrap();
    let mut per_op = std::collections::BTreeMap::<String, usize>::new();
    for (n, case) in cases.iter().enumerate() {
        let op = case["op"].as_str().unwrap();
        let bytes = |key: &str| -> Vec<u8> {
            case[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u8)
                .collect()
        };
        let p: Vec<f64> = case["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let mut img = Rgb8 {
            height: case["height"].as_u64().unwrap() as usize,
            width: case["width"].as_u64().unwrap() as usize,
            data: bytes("input"),
        };
        let f = || p[0] as f32;
        match op {
            "resized_crop" => {
                let u = |i: usize| p[i] as usize;
                img = pil::resized_crop(&img, u(0), u(1), u(2), u(3), u(4));
            }
            "brightness" => pil::adjust_brightness(&mut img, f()),
            "contrast" => pil::adjust_contrast(&mut img, f()),
            "saturation" => pil::adjust_saturation(&mut img, f()),
            "hue" => pil::adjust_hue(&mut img, f()),
            "blur" => pil::gaussian_blur(&mut img, f()),
            "grayscale" => pil::to_grayscale(&mut img),
            "solarize" => pil::solarize(&mut img),
            "hflip" => pil::hflip(&mut img),
            other => panic!("case {n}: unknown op {other}"),
        }
        let want = bytes("output");
        let differ = img.data.iter().zip(&want).filter(|(a, b)| a != b).count();
        assert!(
            img.data.len() == want.len() && differ == 0,
            "case {n} ({op} {p:?}, {}×{}): {differ} of {} bytes differ from Pillow's",
            case["height"],
            case["width"],
            want.len()
        );
        *per_op.entry(op.to_string()).or_default() += 1;
    }
    println!("identical to Pillow: {per_op:?}");
    assert_eq!(per_op.len(), 9, "every op is covered: {per_op:?}");
}
