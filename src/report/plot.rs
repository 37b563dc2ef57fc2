//! The cost per stage as a picture: one SVG file, no external assets. Two panels, parameters and
//! compute; per stage a grey bar for the stage's share of the original model and a coloured bar
//! for its share of what SE adds, on one scale (0 to 100%), so a stage that holds most of the
//! added parameters but little of the added compute shows at a glance.

use super::{percent, Report};
use std::fmt::Write;

/// Width of the picture, of the label column and of the bar area, in px.
const WIDTH: u32 = 760;
const LABEL: u32 = 150;
const BARS: u32 = 420;
/// Height of one bar and of a stage's pair of bars with its gap.
const BAR: u32 = 13;
const ROW: u32 = 2 * BAR + 12;
const BASE_COLOUR: &str = "#b8b8b8";
const PARAMS_COLOUR: &str = "#d9622b";
const COMPUTE_COLOUR: &str = "#2b7bd9";

/// One stage of a panel: its label, its value in the original model, what SE adds to it.
struct Bar {
    label: String,
    before: u64,
    added: u64,
}

/// One panel: a title, the model's totals, a bar pair per stage.
struct Panel<'a> {
    title: String,
    colour: &'a str,
    total_before: u64,
    total_added: u64,
    bars: Vec<Bar>,
}

/// Text made safe for SVG: control characters shown as escapes (XML 1.0 forbids most of them,
/// even as character references), then the markup characters as entities.
fn esc(s: &str) -> String {
    crate::shown::shown(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// 1_579_392 → "1.58M", 4_117_342_184 → "4.12G", 950 → "950".
pub fn short(n: u64) -> String {
    let v = n as f64;
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", v / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}M", v / 1e6),
        _ => format!("{:.2}G", v / 1e9),
    }
}

impl Panel<'_> {
    /// The panel's SVG, its top at `y`; returns the SVG and the panel's height.
    fn draw(&self, y: u32) -> (String, u32) {
        let mut s = String::new();
        let grow = percent(self.total_added, self.total_before);
        let _ = writeln!(
            s,
            r#"<text x="10" y="{}" font-weight="bold">{}: {} → {} (+{}, {grow:+.2}%)</text>"#,
            y + 16,
            esc(&self.title),
            short(self.total_before),
            short(self.total_before.saturating_add(self.total_added)),
            short(self.total_added),
        );
        let top = y + 28;
        for (i, b) in self.bars.iter().enumerate() {
            let row = top + i as u32 * ROW;
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                LABEL - 8,
                row + BAR + 4,
                esc(&b.label)
            );
            let base = percent(b.before, self.total_before);
            let added = percent(b.added, self.total_added);
            s.push_str(&bar(
                row,
                base,
                BASE_COLOUR,
                &format!("{} ({base:.1}%)", short(b.before)),
            ));
            s.push_str(&bar(
                row + BAR,
                added,
                self.colour,
                &format!("+{} ({added:.1}%)", short(b.added)),
            ));
        }
        (s, 28 + self.bars.len() as u32 * ROW + 8)
    }
}

/// One bar of `pct` percent of the bar area at height `y`, labelled after its end.
fn bar(y: u32, pct: f64, colour: &str, label: &str) -> String {
    let w = (pct.clamp(0.0, 100.0) / 100.0 * f64::from(BARS)).round();
    format!(
        "<rect x=\"{LABEL}\" y=\"{y}\" width=\"{w}\" height=\"{}\" fill=\"{colour}\"/>\n\
         <text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>\n",
        BAR - 1,
        f64::from(LABEL) + w + 4.0,
        y + BAR - 3,
        esc(label)
    )
}

impl Report {
    /// The two panels: parameters, and compute when it was counted.
    fn panels(&self) -> Vec<Panel<'static>> {
        let label = |i: usize, n: usize, c: usize| format!("stage {i} ({n}×{c})");
        let mut panels = vec![Panel {
            title: "Parameters".into(),
            colour: PARAMS_COLOUR,
            total_before: self.params_before,
            total_added: self.added_params.max(0) as u64,
            bars: self
                .stages
                .iter()
                .map(|r| Bar {
                    label: label(r.index, r.blocks, r.channels),
                    before: r.params_before,
                    added: r.added_params,
                })
                .collect(),
        }];
        if let Some(c) = &self.compute {
            panels.push(Panel {
                title: "Compute (profiler total)".into(),
                colour: COMPUTE_COLOUR,
                total_before: c.before.profiler,
                total_added: c.added.profiler,
                bars: self
                    .stages
                    .iter()
                    .filter_map(|r| {
                        let k = r.compute?;
                        Some(Bar {
                            label: label(r.index, r.blocks, r.channels),
                            before: k.before.profiler,
                            added: k.added.profiler,
                        })
                    })
                    .collect(),
            });
        }
        panels
    }

    /// The picture as SVG text.
    pub fn to_svg(&self) -> String {
        let mut body = String::new();
        let mut y = 34;
        for p in self.panels() {
            let (svg, h) = p.draw(y);
            body.push_str(&svg);
            y += h;
        }
        let legend = format!(
            "<rect x=\"10\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{BASE_COLOUR}\"/>\n\
             <text x=\"28\" y=\"{}\" font-size=\"11\">the stage's share of the original model</text>\n\
             <rect x=\"290\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{PARAMS_COLOUR}\"/>\n\
             <rect x=\"302\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{COMPUTE_COLOUR}\"/>\n\
             <text x=\"320\" y=\"{}\" font-size=\"11\">its share of what SE adds</text>\n",
            y + 10,
            y + 10
        );
        let title = format!(
            "{}: SE at {}, r = {}",
            self.model,
            self.position_name(),
            self.ratio
        );
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{}\" \
             viewBox=\"0 0 {WIDTH} {}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <title>{}</title>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n{body}{legend}</svg>\n",
            y + 24,
            y + 24,
            esc(&title),
            esc(&title)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Change, Compute, Cost, Percent};

    /// ResNet-50's four stages as the report gives them: the parameters each stage reads and
    /// adds, and the compute each adds (profiler total).
    fn resnet50() -> Report {
        let g = crate::testutil::GraphBuilder::resnet_bottleneck(&[1], 64, 1);
        let view = crate::graph::GraphView::new(&g).unwrap();
        let analysis = crate::analysis::analyse(&view).unwrap();
        let opts = crate::rewrite::SeOptions::default();
        let s = crate::rewrite::splice(&view, &analysis, &opts).unwrap();
        let mut r = crate::testutil::report_of(&view, &analysis, &s, &opts, "a<b>&c.onnx");
        let row = r.stages[0].clone();
        r.stages = [
            (213_312, 25_392, 4_869_984),
            (1_213_056, 133_248, 3_418_368),
        ]
        .iter()
        .chain(&[
            (7_078_912, 792_960, 3_422_976),
            (14_944_256, 1_579_392, 2_403_072),
        ])
        .enumerate()
        .map(|(i, &(params, added, compute))| {
            let mut s = row.clone();
            s.index = i + 1;
            s.params_before = params;
            s.added_params = added;
            s.compute = Some(Change {
                added: Cost {
                    profiler: compute,
                    ..Cost::default()
                },
                ..Change::default()
            });
            s
        })
        .collect();
        (r.params_before, r.added_params) = (25_507_944, 2_530_992);
        let total = |profiler| Cost {
            profiler,
            ..Cost::default()
        };
        r.compute = Some(Compute {
            before: total(4_117_342_184),
            after: total(4_131_456_584),
            added: total(14_114_400),
            increase_pct: Percent::default(),
            outside_stages: Change::default(),
            by_op: vec![],
        });
        r
    }

    #[test]
    fn the_svg_parses_and_shows_the_last_stage_holding_most_parameters() {
        let svg = resnet50().to_svg();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        // No external assets: nothing links out.
        assert!(!svg.contains("href") && !svg.contains("<image"), "{svg}");
        // The model's name is escaped.
        assert!(svg.contains("a&lt;b&gt;&amp;c.onnx"));
        let width = |colour: &str| -> Vec<f64> {
            root.descendants()
                .filter(|n| n.attribute("fill") == Some(colour) && n.has_attribute("x"))
                .filter(|n| n.attribute("x") == Some(&LABEL.to_string()))
                .map(|n| n.attribute("width").unwrap().parse().unwrap())
                .collect()
        };
        // Added parameters per stage: 1.0%, 5.3%, 31.3%, 62.4% of 420 px.
        assert_eq!(width(PARAMS_COLOUR), vec![4.0, 22.0, 132.0, 262.0]);
        // Added compute: 34.5%, 24.2%, 24.3%, 17.0%.
        assert_eq!(width(COMPUTE_COLOUR), vec![145.0, 102.0, 102.0, 72.0]);
        let texts: Vec<&str> = root.descendants().filter_map(|n| n.text()).collect();
        assert!(texts.contains(&"+1.58M (62.4%)"), "{texts:?}");
        assert!(
            texts.contains(&"Parameters: 25.51M → 28.04M (+2.53M, +9.92%)"),
            "{texts:?}"
        );
    }

    #[test]
    fn control_characters_in_the_model_name_keep_the_svg_well_formed() {
        let mut r = resnet50();
        r.model = "m\x01\x1b[2J\u{fffe}<\n.onnx".into();
        let svg = r.to_svg();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let title = doc.descendants().find(|n| n.has_tag_name("title"));
        assert_eq!(
            title.and_then(|t| t.text()),
            Some("m\\x01\\x1b[2J\\u{fffe}<\\n.onnx: SE at standard, r = 16")
        );
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(950), "950");
        assert_eq!(short(25_392), "25.4k");
        assert_eq!(short(1_579_392), "1.58M");
        assert_eq!(short(4_117_342_184), "4.12G");
    }
}
