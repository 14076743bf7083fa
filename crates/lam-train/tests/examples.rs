//! Smoke tests of the digits examples: each example file is compiled in as
//! a module and its `run` called with a tiny configuration, so the examples
//! cannot silently rot.

mod common;

#[allow(dead_code)]
#[path = "../../../examples/digits.rs"]
mod digits;

#[allow(dead_code)]
#[path = "../../../examples/digits_cnn.rs"]
mod digits_cnn;

use common::{cpu, Scratch};

#[test]
fn digits_example_runs() -> lam::Result<()> {
    let dir = Scratch::new("ex-digits");
    let opts = digits::Options {
        epochs: 2,
        out_dir: dir.0.clone(),
        quiet: true,
    };
    let out = digits::run(&opts, &cpu())?;
    assert!(out.accuracy > 0.8, "accuracy {}", out.accuracy);
    assert!(out.macro_f1 > 0.8, "macro F1 {}", out.macro_f1);
    for name in [
        "loss.png",
        "accuracy.svg",
        "confusion_matrix.png",
        "roc.svg",
        "history.csv",
        "scaler.json",
    ] {
        assert!(dir.path(name).exists(), "{name} missing");
    }
    assert!(dir.path("checkpoints/last.safetensors").exists());
    assert!(out.files.len() >= 8);
    let images = read_log(&dir.path("tensorboard"))
        .iter()
        .flat_map(|e| e.values.clone())
        .filter(|v| v.tag.starts_with("plots/"))
        .count();
    assert!(images >= 3, "{images} plots in the log");
    Ok(())
}

#[test]
fn digits_cnn_example_runs() -> lam::Result<()> {
    let dir = Scratch::new("ex-cnn");
    let opts = digits_cnn::Options {
        epochs: 2,
        out_dir: dir.0.clone(),
        quiet: true,
        explain: true,
    };
    let out = digits_cnn::run(&opts, &cpu())?;
    assert!(out.accuracy > 0.5, "accuracy {}", out.accuracy);
    assert!(out.macro_f1 > 0.4, "macro F1 {}", out.macro_f1);
    assert!(dir.path("confusion_matrix.svg").exists());
    assert!(dir.path("checkpoints/best.safetensors").exists());
    assert!(dir.path("explain.svg").exists());
    check_heatmaps(&dir.path("explain.png"));
    // The epochs, weight histograms and plots (heat maps too) are in the log.
    let events = read_log(&dir.path("tensorboard"));
    let tags: Vec<&str> = events
        .iter()
        .flat_map(|e| &e.values)
        .map(|v| v.tag.as_str())
        .collect();
    assert_eq!(tags.iter().filter(|t| **t == "loss/train").count(), 2);
    assert!(tags.contains(&"weights/0.weight"));
    assert!(tags.contains(&"plots/explain"), "{tags:?}");
    Ok(())
}

/// The heat maps are a real picture: five rows of digit and map, greys,
/// and both reds (pixels for the prediction) and blues (against it).
fn check_heatmaps(path: &std::path::Path) {
    let bytes = std::fs::read(path).expect("explain.png");
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("one frame");
    assert_eq!((info.width, info.height), (560, 5 * 280));
    let px = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    let count = |f: &dyn Fn(&[u8]) -> bool| pixels.iter().filter(|p| f(p)).count();
    let reds = count(&|p| p[0] == 255 && p[1] < 200 && p[1] == p[2]);
    let blues = count(&|p| p[2] == 255 && p[0] < 200 && p[0] == p[1]);
    let greys = count(&|p| p[0] == p[1] && p[1] == p[2] && (30..220).contains(&p[0]));
    let colours: std::collections::BTreeSet<&[u8]> = pixels.iter().copied().collect();
    assert!(reds > 1000 && blues > 1000, "reds {reds}, blues {blues}");
    assert!(greys > 1000, "greys {greys}");
    assert!(colours.len() > 50, "{} colours", colours.len());
}

/// Every event in the one event file under `dir`.
fn read_log(dir: &std::path::Path) -> Vec<lam_train::tensorboard::Event> {
    let file = std::fs::read_dir(dir)
        .expect("a TensorBoard directory")
        .filter_map(|e| e.ok())
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
        .expect("an event file");
    lam_train::tensorboard::read_events(file.path()).expect("a readable log")
}

#[allow(dead_code)]
#[path = "../../../examples/wine_importance.rs"]
mod wine_importance;

#[allow(dead_code)]
#[path = "../../../examples/digits_search.rs"]
mod digits_search;

#[test]
fn wine_importance_example_runs() -> lam::Result<()> {
    let dir = Scratch::new("ex-wine");
    let opts = wine_importance::Options {
        epochs: 30,
        n_repeats: 5,
        out_dir: dir.0.clone(),
        quiet: true,
    };
    let out = wine_importance::run(&opts, &cpu())?;
    assert!(out.accuracy > 0.85, "accuracy {}", out.accuracy);
    assert_eq!(out.names.len(), 13);
    assert_eq!(out.importances.mean.len(), 13);
    // Some measurement matters: shuffling it costs accuracy.
    let top = out.importances.mean.iter().fold(0.0f64, |m, &v| m.max(v));
    assert!(top > 0.05, "{:?}", out.importances.mean);
    assert!(dir.path("importances.png").exists() && dir.path("importances.svg").exists());
    Ok(())
}

#[test]
fn digits_search_example_runs() -> lam::Result<()> {
    let dir = Scratch::new("ex-search");
    let opts = digits_search::Options {
        candidates: 2,
        folds: 2,
        epochs: 1,
        out_dir: dir.0.clone(),
        quiet: true,
    };
    let out = digits_search::run(&opts, &cpu())?;
    assert_eq!(out.results.rows.len(), 2);
    assert_eq!(out.results.best().split_scores.len(), 2);
    assert!(
        out.test_accuracy > 0.5,
        "test accuracy {}",
        out.test_accuracy
    );
    assert!(dir.path("results.csv").exists());
    let runs = std::fs::read_dir(dir.path("tensorboard"))
        .expect("runs")
        .count();
    assert_eq!(runs, 2);
    Ok(())
}
