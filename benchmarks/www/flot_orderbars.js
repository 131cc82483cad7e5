/* Stand-in for the flot-orderbars 1.0.0 plugin, which asv's dashboard loads from a CDN
 * and which neither Debian nor PyPI packages (benchmarks/vendor_dashboard.py copies
 * this file in its place). Written for optbench, not a copy of that plugin: bar series
 * that set `bars: {order: k}` are drawn side by side in each x slot instead of on top of
 * each other. That is all asv asks of it: graphdisplay.js draws bars, one series per
 * parameter combination, when a benchmark is plotted against a categorical parameter.
 * Horizontal bars are not handled (asv draws none). */
(function ($) {
    "use strict";

    function shiftOrderedBars(plot, series, datapoints) {
        var bars = series.bars;
        if (!bars || !bars.show || bars.order == null || bars.horizontal) {
            return;
        }
        var ordered = $.grep(plot.getData(), function (s) {
            return s.bars && s.bars.show && s.bars.order != null;
        });
        ordered.sort(function (a, b) { return a.bars.order - b.bars.order; });
        var rank = $.inArray(series, ordered);
        if (ordered.length < 2 || rank < 0) {
            return;
        }
        // centred slots of one bar width each: rank 0 leftmost
        var shift = (rank - (ordered.length - 1) / 2) * bars.barWidth;
        var step = datapoints.pointsize, points = datapoints.points;
        for (var i = 0; i < points.length; i += step) {
            if (points[i] != null) {
                points[i] += shift;
            }
        }
    }

    $.plot.plugins.push({
        init: function (plot) { plot.hooks.processDatapoints.push(shiftOrderedBars); },
        options: { series: { bars: { order: null } } },
        name: "orderBars",
        version: "optbench-1"
    });
})(jQuery);
