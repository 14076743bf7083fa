//! Attribution pictures (`lam_train::plot::attribution`): heat maps and
//! importance bars are written, decodable and non-trivial, and bad input is
//! an error naming the problem.

mod common;

use std::collections::BTreeSet;

use common::Scratch;
use lam_train::plot::{plot_heatmaps, plot_importances, Explained};

/// The distinct colours of a PNG, and its size.
fn colours(path: &std::path::Path) -> (usize, (u32, u32)) {
    let bytes = std::fs::read(path).expect("png written");
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("one frame");
    let px = info.color_type.samples();
    let set: BTreeSet<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    (set.len(), (info.width, info.height))
}

#[test]
fn heat_maps_and_bars_are_drawn() -> lam::Result<()> {
    let dir = Scratch::new("pictures");
    let image: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let attribution: Vec<f32> = (0..12).map(|i| i as f32 - 5.5).collect();
    let samples = [
        Explained {
            label: "first",
            image: &image,
            attribution: &attribution,
        },
        Explained {
            label: "flat",
            image: &[0.0; 12],
            attribution: &[0.0; 12],
        },
    ];
    plot_heatmaps(&dir.path("maps.png"), 3, 4, &samples)?;
    plot_heatmaps(&dir.path("maps.svg"), 3, 4, &samples)?;
    let (n, size) = colours(&dir.path("maps.png"));
    assert_eq!(size, (560, 560));
    assert!(n > 20, "{n} colours");
    let svg = std::fs::read_to_string(dir.path("maps.svg")).expect("svg");
    assert!(svg.matches("<rect").count() >= 48, "one cell per value");

    plot_importances(
        &dir.path("bars.png"),
        "importances",
        &["a", "b", "c"],
        &[0.3, -0.05, 0.1],
        &[0.02, 0.01, 0.05],
    )?;
    let (n, _) = colours(&dir.path("bars.png"));
    assert!(n > 20, "{n} colours");
    Ok(())
}

#[test]
fn bad_pictures_are_errors() {
    let dir = Scratch::new("pictures-bad");
    let short = [Explained {
        label: "short",
        image: &[0.0; 5],
        attribution: &[0.0; 6],
    }];
    let e = plot_heatmaps(&dir.path("x.png"), 2, 3, &short)
        .expect_err("5 values")
        .to_string();
    assert!(
        e.contains("the image has 5 values, a 2×3 picture needs 6"),
        "{e}"
    );
    let e = plot_heatmaps(&dir.path("x.png"), 2, 3, &[])
        .expect_err("nothing")
        .to_string();
    assert!(e.contains("nothing to draw"), "{e}");
    let e = plot_importances(&dir.path("x.png"), "t", &["a"], &[1.0, 2.0], &[0.0])
        .expect_err("lengths")
        .to_string();
    assert!(e.contains("1 names, 2 means"), "{e}");
    let e = plot_importances(&dir.path("x.png"), "t", &["a"], &[f64::NAN], &[0.0])
        .expect_err("nan")
        .to_string();
    assert!(e.contains("finite"), "{e}");
    let e = plot_importances(&dir.path("x.gif"), "t", &["a"], &[1.0], &[0.0])
        .expect_err("extension")
        .to_string();
    assert!(e.contains(".png or .svg"), "{e}");
}
