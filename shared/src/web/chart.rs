//! Charts drawn on the server as SVG with plotters: no script, no fonts to ship, a few
//! kilobytes a chart. A chart only draws; the exact figures stand in a table beside it, and the
//! SVG carries a text alternative for screen readers.

use maud::{Markup, html};
use plotters::prelude::*;

use super::layout::trusted_svg;

/// One line or set of bars.
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

const WIDTH: u32 = 760;
const HEIGHT: u32 = 260;
/// Colours that keep 3:1 contrast against white, as WCAG asks of graphics.
const COLOURS: [RGBColor; 3] = [
    RGBColor(11, 92, 173),
    RGBColor(186, 74, 0),
    RGBColor(15, 107, 58),
];

/// Lines over `labels` (days, hours), one per series, on one axis from zero.
pub fn lines(title: &str, summary: &str, labels: &[String], series: &[Series]) -> Markup {
    let drawn = draw(|root| {
        let top = top_of(series);
        let last = labels.len().saturating_sub(1).max(1);
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(0..last, 0f64..top)?;
        chart
            .configure_mesh()
            .x_labels(labels.len().min(8))
            .x_label_formatter(&|i| short_label(labels.get(*i)))
            .y_labels(5)
            .y_label_formatter(&|v| axis_number(*v))
            .light_line_style(WHITE)
            .label_style(("sans-serif", 13))
            .draw()?;
        for (index, line) in series.iter().enumerate() {
            let colour = COLOURS[index % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    line.values.iter().copied().enumerate(),
                    colour.stroke_width(2),
                ))?
                .label(line.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(3))
                });
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.9))
                .border_style(RGBColor(214, 219, 225))
                .label_font(("sans-serif", 13))
                .draw()?;
        }
        Ok(())
    });
    figure(title, summary, drawn)
}

/// Vertical bars, one per label (top offers, sub-ids, countries).
pub fn bars(title: &str, summary: &str, labels: &[String], values: &[f64]) -> Markup {
    let drawn = draw(|root| {
        let top = top_of(&[Series {
            name: String::new(),
            values: values.to_vec(),
        }]);
        let count = labels.len().max(1);
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(56)
            // A segmented range 0..n has n + 1 segments: one per bar is 0..count - 1.
            .build_cartesian_2d((0..count - 1).into_segmented(), 0f64..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(count)
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(index) => short_label(labels.get(*index)),
                _ => String::new(),
            })
            .y_labels(5)
            .y_label_formatter(&|v| axis_number(*v))
            .light_line_style(WHITE)
            .label_style(("sans-serif", 13))
            .draw()?;
        chart.draw_series(
            Histogram::vertical(&chart)
                .style(COLOURS[0].filled())
                .margin(12)
                .data(values.iter().copied().enumerate()),
        )?;
        Ok(())
    });
    figure(title, summary, drawn)
}

type Root<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error + 'static>>;

fn draw(body: impl FnOnce(&Root<'_>) -> DrawResult) -> Option<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        if let Err(error) = body(&root) {
            tracing::warn!(%error, "a chart could not be drawn");
            return None;
        }
        root.present().ok()?;
    }
    Some(svg)
}

fn figure(title: &str, summary: &str, svg: Option<String>) -> Markup {
    html! {
        figure class="chart" {
            figcaption { (title) }
            @match svg {
                Some(svg) => {
                    // The SVG is ours, drawn from numbers; it is labelled as one image whose
                    // text alternative is the summary (the exact figures are in the table).
                    (trusted_svg(label_svg(&svg, summary)))
                }
                None => p class="muted" { "The chart could not be drawn; the figures are below." }
            }
        }
    }
}

/// Marks the drawing as one image with a text alternative.
fn label_svg(svg: &str, summary: &str) -> String {
    let summary = crate::http::escape_markup(summary);
    match svg.find("<svg") {
        Some(start) => {
            let (before, after) = svg.split_at(start + 4);
            format!(
                "{before} role=\"img\" aria-label=\"{summary}\" preserveAspectRatio=\"xMinYMin meet\"{after}"
            )
        }
        None => svg.to_string(),
    }
}

fn top_of(series: &[Series]) -> f64 {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0, f64::max);
    if max <= 0.0 { 1.0 } else { max * 1.1 }
}

fn axis_number(value: f64) -> String {
    if value >= 1_000_000.0 {
        format!("{:.1}M", value / 1_000_000.0)
    } else if value >= 10_000.0 {
        format!("{:.0}k", value / 1_000.0)
    } else if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Day labels lose their year (`12-03`); other labels are cut to 12 characters.
fn short_label(label: Option<&String>) -> String {
    let Some(label) = label else {
        return String::new();
    };
    if label.len() == 10 && label.as_bytes()[4] == b'-' {
        return label[5..].to_string();
    }
    label.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_labelled_svg_with_escaped_text() {
        let labels: Vec<String> = ["2026-12-01", "2026-12-02", "2026-12-03"]
            .map(String::from)
            .to_vec();
        let markup = lines(
            "Clicks",
            "Clicks by day: 3, 5 & <7>",
            &labels,
            &[Series {
                name: "clicks".into(),
                values: vec![3.0, 5.0, 7.0],
            }],
        )
        .into_string();
        assert!(
            markup.contains("<svg role=\"img\" aria-label=\"Clicks by day: 3, 5 &amp; &lt;7&gt;\"")
        );
        assert!(markup.contains("12-03"), "{markup}");
        assert!(
            markup.len() < 20_000,
            "a chart stays small: {}",
            markup.len()
        );
        let bars = bars("Top", "Top offers", &labels, &[1.0, 0.0, 2.0]).into_string();
        assert!(bars.contains("<rect"));
        // Labels are visitors' sub-ids: whatever a click said is drawn as text, never markup.
        let hostile = vec!["<script>x".to_string(), "\"><img".to_string()];
        let drawn = super::bars("Top", "sub-ids", &hostile, &[1.0, 2.0]).into_string();
        assert!(
            !drawn.contains("<script") && !drawn.contains("\"><img"),
            "{drawn}"
        );
        assert!(drawn.contains("&lt;script&gt;x"), "{drawn}");
    }
}
