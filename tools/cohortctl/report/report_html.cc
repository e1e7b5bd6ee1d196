#include "tools/cohortctl/report/report_html.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "tools/cohortctl/aggregate_format.h"
#include "tools/cohortctl/table_format.h"

namespace cohortd::cohortctl {
namespace {

// Colour-blind-safe categorical palette (Okabe & Ito 2008, extended).
constexpr const char* kPalette[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7",
                                    "#56B4E9", "#D55E00", "#F0E442", "#7F7F7F",
                                    "#882255", "#44AA99"};

constexpr double kWidth = 760;
constexpr double kPlotLeft = 70;
constexpr double kPlotTop = 20;

const char* Colour(size_t i) {
  return kPalette[i % (sizeof(kPalette) / sizeof(kPalette[0]))];
}

std::string Escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string Num(double v) { return absl::StrFormat("%.1f", v); }

// A value as shown on the page: percent with one decimal, or four
// significant digits.
std::string Shown(double value, bool percent) {
  return percent ? absl::StrFormat("%.1f%%", value * 100) : HumanNumber(value);
}

std::string Tooltip(const std::string& label, const Cell& cell, bool percent) {
  return absl::StrCat(
      "<title>", Escape(label), ": ", Shown(cell.value, percent), " [",
      Shown(cell.low, percent), ", ", Shown(cell.high, percent), "]</title>");
}

// A linear map from [lo, hi] to pixels [p0, p1].
struct Scale {
  double lo, hi, p0, p1;
  double operator()(double v) const {
    const double t = hi > lo ? (std::clamp(v, lo, hi) - lo) / (hi - lo) : 0;
    return p0 + t * (p1 - p0);
  }
};

// Tick step of about five ticks over [0, hi]: 1, 2 or 5 times a power of
// ten.
double TickStep(double hi) {
  if (hi <= 0) return 1;
  const double raw = hi / 5;
  const double power = std::pow(10, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0}) {
    if (m * power >= raw) return m * power;
  }
  return 10 * power;
}

// The upper end of a value axis starting at 0: the largest interval end
// (or value) rounded up to a tick.
double AxisTop(const Panel& panel, bool use_high, size_t only_column) {
  double top = 0;
  for (const auto& row : panel.cells) {
    for (size_t c = 0; c < row.size(); ++c) {
      if (only_column != SIZE_MAX && c != only_column) continue;
      if (!row[c]) continue;
      top = std::max(top, use_high ? row[c]->high : row[c]->value);
    }
  }
  if (panel.percent.empty() ? false : panel.percent[0])
    top = std::min(top, 1.0);
  const double step = TickStep(top);
  return std::max(step, std::ceil(top / step) * step);
}

// Horizontal grid lines and labels of a vertical value axis.
std::string ValueAxis(const Scale& y, bool percent, double left, double right,
                      const std::string& label) {
  std::string out;
  const double step = TickStep(y.hi);
  for (double v = 0; v <= y.hi + step / 1e6; v += step) {
    absl::StrAppend(
        &out, "<line class=\"grid\" x1=\"", Num(left), "\" x2=\"", Num(right),
        "\" y1=\"", Num(y(v)), "\" y2=\"", Num(y(v)), "\"/>",
        "<text class=\"tick\" x=\"", Num(left - 6), "\" y=\"", Num(y(v) + 4),
        "\" text-anchor=\"end\">",
        percent ? absl::StrFormat("%g%%", v * 100) : absl::StrFormat("%g", v),
        "</text>");
  }
  const double mid = (y.p0 + y.p1) / 2;
  absl::StrAppend(&out, "<text class=\"axis-label\" transform=\"translate(16,",
                  Num(mid), ") rotate(-90)\" text-anchor=\"middle\">",
                  Escape(label), "</text>");
  return out;
}

std::string XLabel(double x, double y, const std::string& text) {
  return absl::StrCat("<text class=\"tick\" x=\"", Num(x), "\" y=\"", Num(y),
                      "\" text-anchor=\"middle\">", Escape(text), "</text>");
}

std::string ErrorBar(double x, double y_low, double y_high, double half) {
  return absl::StrCat("<path class=\"err\" d=\"M", Num(x), " ", Num(y_low), "V",
                      Num(y_high), "M", Num(x - half), " ", Num(y_low), "h",
                      Num(2 * half), "M", Num(x - half), " ", Num(y_high), "h",
                      Num(2 * half), "\"/>");
}

// A legend row at the bottom of a chart.
std::string Legend(const std::vector<std::string>& names, double y) {
  std::string out;
  double x = kPlotLeft;
  for (size_t i = 0; i < names.size(); ++i) {
    const double width = 26 + 7.2 * static_cast<double>(names[i].size());
    if (x + width > kWidth - 10) {
      x = kPlotLeft;
      y += 18;
    }
    absl::StrAppend(&out, "<rect x=\"", Num(x), "\" y=\"", Num(y - 10),
                    "\" width=\"12\" height=\"12\" rx=\"2\" fill=\"", Colour(i),
                    "\"/><text class=\"legend\" x=\"", Num(x + 17), "\" y=\"",
                    Num(y), "\">", Escape(names[i]), "</text>");
    x += width;
  }
  return out;
}

// Rows of the legend Legend() will need.
int LegendRows(const std::vector<std::string>& names) {
  int rows = 1;
  double x = kPlotLeft;
  for (const std::string& name : names) {
    const double width = 26 + 7.2 * static_cast<double>(name.size());
    if (x + width > kWidth - 10) {
      x = kPlotLeft;
      ++rows;
    }
    x += width;
  }
  return rows;
}

std::string SvgOpen(double height, const std::string& title) {
  return absl::StrCat("<svg width=\"", Num(kWidth), "\" height=\"", Num(height),
                      "\" viewBox=\"0 0 ", Num(kWidth), " ", Num(height),
                      "\" role=\"img\" aria-label=\"", Escape(title), "\">");
}

// Stacked 100% bars: one bar per column, rows stacked in palette order.
std::string StackedShares(const Panel& panel) {
  const double plot_bottom = 280;
  const double height = plot_bottom + 40 + 18 * LegendRows(panel.rows);
  std::string out = SvgOpen(height, panel.title);
  const Scale y{0, 1, plot_bottom, kPlotTop};
  absl::StrAppend(
      &out, ValueAxis(y, true, kPlotLeft, kWidth - 10, panel.value_label));
  const double slot =
      (kWidth - 10 - kPlotLeft) / std::max<size_t>(1, panel.columns.size());
  for (size_t c = 0; c < panel.columns.size(); ++c) {
    const double x = kPlotLeft + slot * c + slot * 0.15;
    double base = 0;
    for (size_t r = 0; r < panel.rows.size(); ++r) {
      const std::optional<Cell>& cell = panel.cells[r][c];
      if (!cell) continue;
      const double top = base + cell->value;
      absl::StrAppend(
          &out, "<rect x=\"", Num(x), "\" y=\"", Num(y(top)), "\" width=\"",
          Num(slot * 0.7), "\" height=\"", Num(y(base) - y(top)), "\" fill=\"",
          Colour(r), "\">",
          Tooltip(absl::StrCat(panel.rows[r], ", ", panel.columns[c]), *cell,
                  true),
          "</rect>");
      if (cell->value >= 0.06) {
        absl::StrAppend(&out, "<text class=\"in-bar\" x=\"",
                        Num(x + slot * 0.35), "\" y=\"",
                        Num((y(base) + y(top)) / 2 + 4),
                        "\" text-anchor=\"middle\">",
                        absl::StrFormat("%.0f", cell->value * 100), "</text>");
      }
      base = top;
    }
    absl::StrAppend(
        &out, XLabel(x + slot * 0.35, plot_bottom + 18, panel.columns[c]));
  }
  absl::StrAppend(&out, Legend(panel.rows, plot_bottom + 48), "</svg>");
  return out;
}

// Vertical box plots: whiskers p5-p95, box p25-p75, median line, mean
// diamond.
std::string BoxPlot(const Panel& panel) {
  const double plot_bottom = 280;
  const double height = plot_bottom + 60;
  std::string out = SvgOpen(height, panel.title);
  double top = 0;
  for (const auto& row : panel.cells) {
    for (const auto& cell : row) {
      if (cell) top = std::max(top, cell->value);
    }
  }
  if (panel.percent[0]) top = std::min(top, 1.0);
  const double step = TickStep(top);
  const Scale y{0, std::max(step, std::ceil(top / step) * step), plot_bottom,
                kPlotTop};
  absl::StrAppend(&out, ValueAxis(y, panel.percent[0], kPlotLeft, kWidth - 10,
                                  panel.value_label));
  const double slot =
      (kWidth - 10 - kPlotLeft) / std::max<size_t>(1, panel.rows.size());
  for (size_t r = 0; r < panel.rows.size(); ++r) {
    const auto& c = panel.cells[r];
    const double cx = kPlotLeft + slot * (r + 0.5);
    const double half = std::min(40.0, slot * 0.3);
    absl::StrAppend(&out, XLabel(cx, plot_bottom + 18, panel.rows[r]));
    if (!c[0] || !c[1] || !c[2] || !c[3] || !c[4]) {
      absl::StrAppend(&out, XLabel(cx, plot_bottom - 10, "not released"));
      continue;
    }
    const std::string tip =
        absl::StrCat("<title>", Escape(panel.rows[r]), ": p5 ",
                     Shown(c[0]->value, panel.percent[0]), ", p25 ",
                     Shown(c[1]->value, panel.percent[0]), ", median ",
                     Shown(c[2]->value, panel.percent[0]), ", p75 ",
                     Shown(c[3]->value, panel.percent[0]), ", p95 ",
                     Shown(c[4]->value, panel.percent[0]), "</title>");
    absl::StrAppend(
        &out, "<g fill=\"", Colour(0), "\">", tip,
        "<path class=\"whisker\" d=\"M", Num(cx), " ", Num(y(c[0]->value)), "V",
        Num(y(c[1]->value)), "M", Num(cx), " ", Num(y(c[3]->value)), "V",
        Num(y(c[4]->value)), "M", Num(cx - half / 2), " ", Num(y(c[0]->value)),
        "h", Num(half), "M", Num(cx - half / 2), " ", Num(y(c[4]->value)), "h",
        Num(half), "\"/>", "<rect class=\"box\" x=\"", Num(cx - half),
        "\" y=\"", Num(y(c[3]->value)), "\" width=\"", Num(2 * half),
        "\" height=\"", Num(std::max(1.0, y(c[1]->value) - y(c[3]->value))),
        "\"/>", "<path class=\"median\" d=\"M", Num(cx - half), " ",
        Num(y(c[2]->value)), "h", Num(2 * half), "\"/>");
    if (c[5]) {
      const double my = y(c[5]->value);
      absl::StrAppend(&out, "<path class=\"mean\" d=\"M", Num(cx), " ",
                      Num(my - 6), "l6 6l-6 6l-6 -6z\"/>");
    }
    absl::StrAppend(&out, "</g>");
  }
  // The diamond is the panel's sixth column: the mean, or the geometric
  // mean where the study marks that (figure 3).
  absl::StrAppend(&out, "<text class=\"legend\" x=\"", Num(kPlotLeft),
                  "\" y=\"", Num(plot_bottom + 48),
                  "\">box: 25th-75th percentile, line: median, whiskers: "
                  "5th-95th percentile, diamond: ",
                  Escape(panel.columns.size() > 5 ? panel.columns[5] : "mean"),
                  "</text></svg>");
  return out;
}

// Grouped vertical bars with error bars: rows on the x axis, one bar per
// column.
std::string GroupedBars(const Panel& panel) {
  const double plot_bottom = 260;
  const bool legend = panel.columns.size() > 1;
  const double height = plot_bottom + (legend ? 60 : 36);
  std::string out = SvgOpen(height, panel.title);
  const Scale y{0, AxisTop(panel, true, SIZE_MAX), plot_bottom, kPlotTop};
  absl::StrAppend(&out, ValueAxis(y, panel.percent[0], kPlotLeft, kWidth - 10,
                                  panel.value_label));
  const double slot =
      (kWidth - 10 - kPlotLeft) / std::max<size_t>(1, panel.rows.size());
  const double bar =
      std::min(60.0, slot * 0.7 / std::max<size_t>(1, panel.columns.size()));
  for (size_t r = 0; r < panel.rows.size(); ++r) {
    const double group_left =
        kPlotLeft + slot * (r + 0.5) - bar * panel.columns.size() / 2;
    absl::StrAppend(&out, XLabel(kPlotLeft + slot * (r + 0.5), plot_bottom + 18,
                                 panel.rows[r]));
    for (size_t c = 0; c < panel.columns.size(); ++c) {
      const std::optional<Cell>& cell = panel.cells[r][c];
      const double x = group_left + bar * c;
      if (!cell) continue;
      absl::StrAppend(
          &out, "<rect x=\"", Num(x + 2), "\" y=\"", Num(y(cell->value)),
          "\" width=\"", Num(bar - 4), "\" height=\"",
          Num(plot_bottom - y(cell->value)), "\" fill=\"", Colour(c), "\">",
          Tooltip(absl::StrCat(panel.rows[r], ", ", panel.columns[c]), *cell,
                  panel.percent[c]),
          "</rect>",
          ErrorBar(x + bar / 2, y(cell->low), y(cell->high), bar / 5),
          "<text class=\"value\" x=\"", Num(x + bar / 2), "\" y=\"",
          Num(y(cell->high) - 5), "\" text-anchor=\"middle\">",
          Shown(cell->value, panel.percent[c]), "</text>");
    }
  }
  if (legend) absl::StrAppend(&out, Legend(panel.columns, plot_bottom + 48));
  absl::StrAppend(&out, "</svg>");
  return out;
}

// Horizontal bars of column 0 with error bars, one row each.
std::string HorizontalBars(const Panel& panel) {
  const double left = 250;
  const double row_height = 26;
  const double plot_bottom = kPlotTop + row_height * panel.rows.size();
  const double height = plot_bottom + 50;
  std::string out = SvgOpen(height, panel.title);
  const Scale x{0, AxisTop(panel, true, 0), left, kWidth - 60};
  const double step = TickStep(x.hi);
  for (double v = 0; v <= x.hi + step / 1e6; v += step) {
    absl::StrAppend(&out, "<line class=\"grid\" x1=\"", Num(x(v)), "\" x2=\"",
                    Num(x(v)), "\" y1=\"", Num(kPlotTop), "\" y2=\"",
                    Num(plot_bottom), "\"/>",
                    XLabel(x(v), plot_bottom + 16,
                           panel.percent[0] ? absl::StrFormat("%g%%", v * 100)
                                            : absl::StrFormat("%g", v)));
  }
  absl::StrAppend(&out, "<text class=\"axis-label\" x=\"",
                  Num((x.p0 + x.p1) / 2), "\" y=\"", Num(plot_bottom + 38),
                  "\" text-anchor=\"middle\">", Escape(panel.value_label),
                  "</text>");
  for (size_t r = 0; r < panel.rows.size(); ++r) {
    const double top = kPlotTop + row_height * r;
    const double mid = top + row_height / 2;
    absl::StrAppend(&out, "<text class=\"tick\" x=\"", Num(left - 8), "\" y=\"",
                    Num(mid + 4), "\" text-anchor=\"end\">",
                    Escape(panel.rows[r]), "</text>");
    const std::optional<Cell>& cell = panel.cells[r][0];
    if (!cell) continue;
    absl::StrAppend(&out, "<rect x=\"", Num(left), "\" y=\"", Num(top + 4),
                    "\" width=\"", Num(x(cell->value) - left), "\" height=\"",
                    Num(row_height - 8), "\" fill=\"", Colour(0), "\">",
                    Tooltip(panel.rows[r], *cell, panel.percent[0]), "</rect>",
                    "<path class=\"err\" d=\"M", Num(x(cell->low)), " ",
                    Num(mid), "H", Num(x(cell->high)), "M", Num(x(cell->low)),
                    " ", Num(mid - 5), "v10M", Num(x(cell->high)), " ",
                    Num(mid - 5), "v10\"/>", "<text class=\"value\" x=\"",
                    Num(x(cell->high) + 6), "\" y=\"", Num(mid + 4), "\">",
                    Shown(cell->value, panel.percent[0]), "</text>");
  }
  absl::StrAppend(&out, "</svg>");
  return out;
}

// Small multiples, one per row (three across, a shared value axis): the
// row's values across the columns as a line, its intervals as a shaded
// band. One chart with nine lines and their error bars is unreadable.
std::string Lines(const Panel& panel) {
  constexpr int kAcross = 3;
  constexpr double kCellWidth = (kWidth - 20) / kAcross;
  constexpr double kCellHeight = 170;
  constexpr double kInnerLeft = 52, kInnerTop = 24, kInnerBottom = 130;
  const size_t down = (panel.rows.size() + kAcross - 1) / kAcross;
  std::string out = SvgOpen(kCellHeight * down + 30, panel.title);
  const double top = AxisTop(panel, false, SIZE_MAX);
  const double step = TickStep(top);
  for (size_t r = 0; r < panel.rows.size(); ++r) {
    const double left = 10 + kCellWidth * (r % kAcross);
    const double y0 = kCellHeight * (r / kAcross);
    const Scale y{0, top, y0 + kInnerBottom, y0 + kInnerTop};
    const double plot_left = left + kInnerLeft;
    const double plot_right = left + kCellWidth - 12;
    const double slot =
        (plot_right - plot_left) / std::max<size_t>(1, panel.columns.size());
    auto x_of = [&](size_t c) { return plot_left + slot * (c + 0.5); };
    absl::StrAppend(&out, "<text class=\"axis-label\" x=\"", Num(plot_left),
                    "\" y=\"", Num(y0 + 14), "\" fill=\"", Colour(r), "\">",
                    Escape(panel.rows[r]), "</text>");
    for (double v = 0; v <= top + step / 1e6; v += step) {
      absl::StrAppend(&out, "<line class=\"grid\" x1=\"", Num(plot_left),
                      "\" x2=\"", Num(plot_right), "\" y1=\"", Num(y(v)),
                      "\" y2=\"", Num(y(v)), "\"/><text class=\"tick\" x=\"",
                      Num(plot_left - 4), "\" y=\"", Num(y(v) + 4),
                      "\" text-anchor=\"end\">",
                      panel.percent[0] ? absl::StrFormat("%g%%", v * 100)
                                       : absl::StrFormat("%g", v),
                      "</text>");
    }
    if (!panel.columns.empty()) {
      absl::StrAppend(
          &out, XLabel(x_of(0), y0 + kInnerBottom + 16, panel.columns.front()),
          XLabel(x_of(panel.columns.size() - 1), y0 + kInnerBottom + 16,
                 panel.columns.back()));
    }
    std::string line, upper, lower, points;
    for (size_t c = 0; c < panel.columns.size(); ++c) {
      const std::optional<Cell>& cell = panel.cells[r][c];
      if (!cell) continue;
      const double px = x_of(c);
      absl::StrAppend(&line, line.empty() ? "M" : "L", Num(px), " ",
                      Num(y(cell->value)));
      absl::StrAppend(&upper, upper.empty() ? "M" : "L", Num(px), " ",
                      Num(y(cell->high)));
      lower = absl::StrCat("L", Num(px), " ", Num(y(cell->low)), lower);
      absl::StrAppend(
          &points, "<circle cx=\"", Num(px), "\" cy=\"", Num(y(cell->value)),
          "\" r=\"3\" fill=\"", Colour(r), "\">",
          Tooltip(absl::StrCat(panel.rows[r], ", ", panel.columns[c]), *cell,
                  panel.percent[0]),
          "</circle>");
    }
    if (line.empty()) continue;
    absl::StrAppend(&out, "<path class=\"band\" fill=\"", Colour(r), "\" d=\"",
                    upper, lower,
                    "Z\"/><path class=\"line\" "
                    "stroke=\"",
                    Colour(r), "\" d=\"", line, "\"/>", points);
  }
  absl::StrAppend(&out, "<text class=\"legend\" x=\"10\" y=\"",
                  Num(kCellHeight * down + 20),
                  "\">line: released mean; band: its 95% interval (cut at the "
                  "axis)</text></svg>");
  return out;
}

std::string Chart(const Panel& panel) {
  switch (panel.chart) {
    case ChartKind::kStackedShares:
      return StackedShares(panel);
    case ChartKind::kBoxPlot:
      return BoxPlot(panel);
    case ChartKind::kGroupedBars:
      return GroupedBars(panel);
    case ChartKind::kHorizontalBars:
      return HorizontalBars(panel);
    case ChartKind::kLines:
      return Lines(panel);
  }
  return "";
}

// The panel's numbers as a compact HTML table, folded away by default.
std::string DataTable(const Panel& panel) {
  std::string out = absl::StrCat(
      "<details><summary>values and intervals</summary><table><tr><th>",
      Escape(panel.row_label), "</th>");
  for (const std::string& column : panel.columns) {
    absl::StrAppend(&out, "<th>", Escape(column), "</th>");
  }
  absl::StrAppend(&out, "</tr>");
  for (size_t r = 0; r < panel.rows.size(); ++r) {
    absl::StrAppend(&out, "<tr><td>", Escape(panel.rows[r]), "</td>");
    for (size_t c = 0; c < panel.columns.size(); ++c) {
      const std::optional<Cell>& cell = panel.cells[r][c];
      const bool pct = panel.percent[c];
      absl::StrAppend(
          &out, "<td>",
          cell ? absl::StrCat(Shown(cell->value, pct), " <span class=\"ci\">[",
                              Shown(cell->low, pct), ", ",
                              Shown(cell->high, pct), "]</span>")
               : "&ndash;",
          "</td>");
    }
    absl::StrAppend(&out, "</tr>");
  }
  absl::StrAppend(&out, "</table></details>");
  return out;
}

std::string BudgetPanel(const std::vector<FigureResult>& figures,
                        const ReportContext& context) {
  const auto& budget = context.budget;
  const double total = budget.total().epsilon();
  const double spent = budget.spent().epsilon();
  const double width = kWidth - 2 * kPlotLeft;
  const double spent_px =
      total > 0 ? width * std::clamp(spent / total, 0.0, 1.0) : 0;
  std::string out = absl::StrCat(
      "<section><h2>Privacy budget</h2>", SvgOpen(90, "privacy budget"),
      "<rect x=\"", Num(kPlotLeft), "\" y=\"20\" width=\"", Num(width),
      "\" height=\"26\" rx=\"4\" fill=\"#e6edf3\"/><rect x=\"", Num(kPlotLeft),
      "\" y=\"20\" width=\"", Num(spent_px),
      "\" height=\"26\" rx=\"4\" fill=\"", Colour(5), "\"/>",
      "<text class=\"tick\" x=\"", Num(kPlotLeft), "\" y=\"66\">spent ε ",
      CompactNumber(spent), "</text><text class=\"tick\" x=\"",
      Num(kPlotLeft + width), "\" y=\"66\" text-anchor=\"end\">remaining ε ",
      CompactNumber(budget.remaining().epsilon()), " of ", CompactNumber(total),
      "</text></svg>");
  absl::StrAppend(
      &out, "<table><tr><th></th><th>ε</th><th>δ</th><th>ρ (zCDP)</th></tr>");
  for (const auto& [name, cost] : {std::pair{"total", &budget.total()},
                                   {"spent", &budget.spent()},
                                   {"remaining", &budget.remaining()}}) {
    absl::StrAppend(&out, "<tr><td>", name, "</td><td>",
                    CompactNumber(cost->epsilon()), "</td><td>",
                    CompactNumber(cost->delta()), "</td><td>",
                    CompactNumber(cost->rho()), "</td></tr>");
  }
  absl::StrAppend(&out,
                  "</table><table><tr><th>figure</th><th>ε charged "
                  "by its releases</th></tr>");
  for (const FigureResult& figure : figures) {
    absl::StrAppend(&out, "<tr><td>", figure.number, ". ", Escape(figure.title),
                    "</td><td>", CompactNumber(figure.epsilon),
                    figure.from_cache ? " (stored release, free)" : "",
                    "</td></tr>");
  }
  absl::StrAppend(
      &out, "</table><p class=\"note\">Principal <code>",
      Escape(budget.principal()),
      "</code>. Releases compose in zero-concentrated DP (ρ adds up), so "
      "the ε spent overall is less than the sum of the figures' ε.</p>"
      "</section>");
  return out;
}

constexpr char kStyle[] = R"css(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",
Arial,sans-serif;margin:0;background:#f6f8fa;color:#1f2328;line-height:1.45}
main{max-width:820px;margin:0 auto;padding:24px}
header{background:#0b3d66;color:#fff;padding:28px 24px}
header h1{margin:0 0 6px;font-size:26px;max-width:820px;margin-inline:auto}
header p{margin:0 auto;max-width:820px;opacity:.9}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;
padding:16px 20px;margin:18px 0}
h2{font-size:19px;margin:0 0 10px}h3{font-size:15px;margin:14px 0 4px;
color:#424a53}
svg{display:block;max-width:100%;height:auto}
.grid{stroke:#e5e8eb;stroke-width:1}
.tick{font-size:12px;fill:#424a53}.axis-label{font-size:13px;fill:#1f2328}
.legend{font-size:12px;fill:#1f2328}.value{font-size:11px;fill:#1f2328}
.in-bar{font-size:10px;fill:#fff}
.err{stroke:#1f2328;stroke-width:1.5;fill:none}
.line{fill:none;stroke-width:2}.band{fill-opacity:.15;stroke:none}
.box{fill-opacity:.25;stroke:#0072B2;stroke-width:1.5}
.whisker{stroke:#0072B2;stroke-width:1.5;fill:none}
.median{stroke:#1f2328;stroke-width:2.5}.mean{fill:#D55E00}
.meta{font-size:13px;color:#424a53;margin:6px 0 0}
.note{font-size:13px;color:#57606a}
.truth{font-size:13px;color:#1a7f37}.truth.bad{color:#cf222e}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border-bottom:1px solid #e5e8eb;padding:3px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}.ci{color:#6e7781}
details summary{cursor:pointer;font-size:13px;color:#0969da;margin-top:6px}
)css";

}  // namespace

std::string RenderReportHtml(const std::vector<FigureResult>& figures,
                             const ReportContext& context) {
  const auto& p = context.privacy;
  std::string out = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width\">"
      "<link rel=\"icon\" href=\"data:,\">"
      "<title>cohortd report: ",
      Escape(context.dataset), "</title><style>", kStyle,
      "</style></head><body><header><h1>How people use AI coding agents: "
      "the study's figures, released privately</h1><p>Dataset <b>",
      Escape(context.dataset), "</b> &middot; ", Escape(context.generated_at),
      " &middot; every number below is a differentially private release "
      "from cohortd</p></header><main>");
  absl::StrAppend(
      &out,
      "<section><h2>What the numbers mean</h2><p class=\"note\">Each account "
      "contributes to at most ",
      p.max_cohorts_per_account(), " cohorts of a query and at most ",
      p.max_sessions_per_cohort(),
      " sessions to each; measures are clamped to public bounds; a cohort is "
      "shown only with at least k = ",
      p.k(),
      " distinct accounts and after DP partition selection. Error bars and "
      "bracketed ranges are 95% confidence intervals for the value on the "
      "bounded data: they account for the noise, not for the bias of "
      "bounding heavy users. A dash or gap is a cohort that was not "
      "released.</p></section>");
  for (const FigureResult& figure : figures) {
    absl::StrAppend(&out, "<section id=\"figure-", figure.number, "\"><h2>",
                    "Figure ", figure.number, ". ", Escape(figure.title),
                    "</h2>");
    for (const Panel& panel : figure.panels) {
      if (figure.panels.size() > 1) {
        absl::StrAppend(&out, "<h3>", Escape(panel.title), "</h3>");
      }
      absl::StrAppend(&out, Chart(panel), DataTable(panel));
    }
    absl::StrAppend(
        &out, "<p class=\"meta\">ε = ", CompactNumber(figure.epsilon),
        figure.from_cache ? " (stored release: charged nothing)" : "", "</p>");
    for (const std::string& line : figure.suppression) {
      absl::StrAppend(&out, "<p class=\"meta\">Released: ", Escape(line),
                      "</p>");
    }
    for (const std::string& note : figure.notes) {
      absl::StrAppend(&out, "<p class=\"note\">", Escape(note), "</p>");
    }
    if (context.has_truth) {
      const Coverage coverage = CoverageOf(figure);
      absl::StrAppend(
          &out, "<p class=\"truth\">Honesty check: ", coverage.inside, " of ",
          coverage.checked,
          " released values have the synthetic raw truth inside their "
          "interval.</p>");
    }
    absl::StrAppend(&out, "</section>");
  }
  absl::StrAppend(&out, BudgetPanel(figures, context),
                  "</main></body></html>\n");
  return out;
}

}  // namespace cohortd::cohortctl
