//! The PNG plots: grouped bars (median, with a min..max whisker) per section, and lines over
//! the number of concurrent streams.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::stats::{self, Summary};
use crate::{Results, Row, bound, label};

const FONT: &str = "sans-serif";
const DEFAULT_FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers the TrueType font for all text: `$BENCH_FONT`, else DejaVu Sans.
pub fn load_font() -> Result<(), String> {
    let path = match std::env::var_os("BENCH_FONT") {
        Some(p) => PathBuf::from(p),
        None => DEFAULT_FONTS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or("no font for the plots: install DejaVu Sans (Debian: apt-get install fonts-dejavu-core) or set BENCH_FONT to a .ttf file")?,
    };
    let bytes =
        std::fs::read(&path).map_err(|e| format!("cannot read font {}: {e}", path.display()))?;
    plotters::style::register_font(FONT, FontStyle::Normal, Box::leak(bytes.into_boxed_slice()))
        .map_err(|_| format!("{} is not a usable TrueType font", path.display()))
}

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("plotting failed: {e}")
}

/// One series' colour, stable across plots.
fn colour(name: &str) -> RGBColor {
    match name {
        "llama-bench" | "llama-server" | "curl" => RGBColor(31, 119, 180),
        "llama-bench AMX off" => RGBColor(140, 190, 230),
        "llama crate" => RGBColor(255, 127, 14),
        "ollamars" | "ollamars list" => RGBColor(214, 39, 40),
        "ollamars (runner timing)" | "ollamars show" => RGBColor(240, 150, 150),
        _ => {
            let h = name
                .bytes()
                .fold(7u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
            let pal = [
                RGBColor(44, 160, 44),
                RGBColor(148, 103, 189),
                RGBColor(140, 86, 75),
                RGBColor(127, 127, 127),
            ];
            pal[h as usize % pal.len()]
        }
    }
}

/// One bar: a series' summary in a group.
struct Bar {
    series: String,
    s: Summary,
}

/// One group of bars (a model), with an optional horizontal marker (the tg bound).
struct Group {
    label: String,
    bars: Vec<Bar>,
    marker: Option<f64>,
}

/// One chart: a metric across models.
struct Panel {
    title: String,
    unit: String,
    groups: Vec<Group>,
}

/// Writes every plot; returns (name, path) of each PNG written.
pub fn all(res: &Results, dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut out = Vec::new();
    for section in ["throughput", "ttft", "memory", "pull"] {
        let panels = bar_panels(res, section);
        if panels.is_empty() {
            continue;
        }
        let path = dir.join(format!("{section}.png"));
        draw_bars(&path, &panels)?;
        out.push((section.to_string(), path));
    }
    let lines: Vec<&Row> = res.results.iter().filter(|r| r.x.is_some()).collect();
    if !lines.is_empty() {
        let path = dir.join("parallel.png");
        draw_lines(res, &path, &lines)?;
        out.push(("parallel".to_string(), path));
    }
    Ok(out)
}

/// The section's rows grouped into panels by metric (in first-seen order), models as groups.
fn bar_panels(res: &Results, section: &str) -> Vec<Panel> {
    let mut panels: Vec<Panel> = Vec::new();
    for row in res
        .results
        .iter()
        .filter(|r| r.section == section && r.x.is_none())
    {
        let bars: Vec<Bar> = row
            .series()
            .into_iter()
            .filter_map(|(series, xs)| Summary::of(&xs).map(|s| Bar { series, s }))
            .collect();
        if bars.is_empty() {
            continue;
        }
        let group = Group {
            label: label(res, &row.model),
            bars,
            marker: if row.bound {
                bound(res, &row.model)
            } else {
                None
            },
        };
        match panels.iter_mut().find(|p| p.title == row.metric) {
            Some(p) => p.groups.push(group),
            None => panels.push(Panel {
                title: row.metric.clone(),
                unit: row.unit.clone(),
                groups: vec![group],
            }),
        }
    }
    panels
}

fn draw_bars(path: &Path, panels: &[Panel]) -> Result<(), String> {
    const PANEL_H: u32 = 400;
    let root = BitMapBackend::new(path, (1100, PANEL_H * panels.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    for (area, panel) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        let ymax = panel
            .groups
            .iter()
            .flat_map(|g| g.bars.iter().map(|b| b.s.max).chain(g.marker))
            .fold(0.0, f64::max)
            .max(1e-9)
            * 1.45;
        let ng = panel.groups.len();
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, (FONT, 22))
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..ng as f64, 0f64..ymax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(1)
            .x_label_formatter(&|_| String::new())
            .y_label_formatter(&|v| stats::num(*v))
            .y_desc(panel.unit.as_str())
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        // Series names in first-seen order, one legend entry each.
        let mut names: Vec<String> = Vec::new();
        for g in &panel.groups {
            for b in &g.bars {
                if !names.contains(&b.series) {
                    names.push(b.series.clone());
                }
            }
        }
        for name in &names {
            let c = colour(name);
            let mut rects = Vec::new();
            let mut whiskers = Vec::new();
            let mut texts = Vec::new();
            for (gi, g) in panel.groups.iter().enumerate() {
                let k = g.bars.len() as f64;
                let w = 0.8 / k;
                if let Some(i) = g.bars.iter().position(|b| &b.series == name) {
                    let b = &g.bars[i];
                    let x0 = gi as f64 + 0.1 + i as f64 * w;
                    let xc = x0 + w / 2.0;
                    rects.push(Rectangle::new(
                        [(x0 + w * 0.06, 0.0), (x0 + w * 0.94, b.s.median)],
                        c.filled(),
                    ));
                    if b.s.n > 1 {
                        whiskers.push(PathElement::new(
                            vec![(xc, b.s.min), (xc, b.s.max)],
                            BLACK.stroke_width(2),
                        ));
                        for y in [b.s.min, b.s.max] {
                            whiskers.push(PathElement::new(
                                vec![(xc - w * 0.15, y), (xc + w * 0.15, y)],
                                BLACK.stroke_width(2),
                            ));
                        }
                    }
                    texts.push(Text::new(
                        stats::num(b.s.median),
                        (xc, b.s.max.max(b.s.median) + ymax * 0.01),
                        TextStyle::from((FONT, 13).into_font())
                            .pos(Pos::new(HPos::Center, VPos::Bottom)),
                    ));
                }
            }
            chart
                .draw_series(rects)
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
            chart.draw_series(whiskers).map_err(err)?;
            chart.draw_series(texts).map_err(err)?;
        }
        let markers: Vec<PathElement<(f64, f64)>> = panel
            .groups
            .iter()
            .enumerate()
            .filter_map(|(gi, g)| {
                g.marker.map(|m| {
                    PathElement::new(
                        vec![(gi as f64 + 0.05, m), (gi as f64 + 0.95, m)],
                        RGBColor(60, 60, 60).stroke_width(2),
                    )
                })
            })
            .collect();
        if !markers.is_empty() {
            chart
                .draw_series(markers)
                .map_err(err)?
                .label("bandwidth bound")
                .legend(|(x, y)| {
                    PathElement::new(
                        vec![(x, y), (x + 14, y)],
                        RGBColor(60, 60, 60).stroke_width(2),
                    )
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(err)?;
        // Group labels under the axis.
        let (bx, by) = area.get_base_pixel();
        for (gi, g) in panel.groups.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(gi as f64 + 0.5, 0.0));
            area.draw(&Text::new(
                g.label.clone(),
                (px - bx, py - by + 8),
                TextStyle::from((FONT, 16).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(err)?;
        }
    }
    root.present().map_err(err)
}

fn draw_lines(res: &Results, path: &Path, rows: &[&Row]) -> Result<(), String> {
    let mut metrics: Vec<(String, String)> = Vec::new();
    for r in rows {
        if !metrics.iter().any(|(m, _)| m == &r.metric) {
            metrics.push((r.metric.clone(), r.unit.clone()));
        }
    }
    let mut models: Vec<&str> = Vec::new();
    for r in rows {
        if !models.contains(&r.model.as_str()) {
            models.push(&r.model);
        }
    }
    let xs: Vec<u32> = {
        let mut v: Vec<u32> = rows.iter().filter_map(|r| r.x).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let xmax = xs.last().map_or(1.0, |&x| f64::from(x.max(1)).log2());
    const PANEL_H: u32 = 420;
    let root = BitMapBackend::new(path, (1100, PANEL_H * metrics.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    for (area, (metric, unit)) in root.split_evenly((metrics.len(), 1)).iter().zip(&metrics) {
        let mine: Vec<&&Row> = rows.iter().filter(|r| &r.metric == metric).collect();
        let ymax = mine
            .iter()
            .flat_map(|r| r.series().into_iter().flat_map(|(_, v)| v))
            .fold(0.0, f64::max)
            .max(1e-9)
            * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{metric} vs concurrent streams"), (FONT, 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.2f64..xmax + 0.2, 0f64..ymax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(xs.len().max(2))
            .x_label_formatter(&|v| format!("{:.0}", 2f64.powf(*v)))
            .x_desc("streams")
            .y_label_formatter(&|v| stats::num(*v))
            .y_desc(unit.as_str())
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (mi, model) in models.iter().enumerate() {
            let mut names: Vec<String> = Vec::new();
            for r in mine.iter().filter(|r| r.model == *model) {
                for (n, _) in r.series() {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
            }
            for name in names {
                let pts: Vec<(f64, f64)> = mine
                    .iter()
                    .filter(|r| r.model == *model)
                    .filter_map(|r| {
                        let s = Summary::of(&r.get(&name))?;
                        Some((f64::from(r.x?.max(1)).log2(), s.median))
                    })
                    .collect();
                if pts.is_empty() {
                    continue;
                }
                let base = colour(&name);
                // The second model's lines in a darker shade of the series colour.
                let c = if mi == 0 {
                    base
                } else {
                    RGBColor(base.0 / 2, base.1 / 2, base.2 / 2)
                };
                let style = c.stroke_width(if mi == 0 { 3 } else { 2 });
                chart
                    .draw_series(LineSeries::new(pts.clone(), style))
                    .map_err(err)?
                    .label(format!("{} · {name}", label(res, model)))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
                if mi == 0 {
                    chart
                        .draw_series(pts.iter().map(|&p| Circle::new(p, 5, c.filled())))
                        .map_err(err)?;
                } else {
                    chart
                        .draw_series(pts.iter().map(|&p| TriangleMarker::new(p, 6, c.filled())))
                        .map_err(err)?;
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)
}
