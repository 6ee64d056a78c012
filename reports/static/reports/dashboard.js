/* The reports dashboard's charts (Chart.js, vendored). The series come from a json_script block (no inline
   script: CSP); money arrives as strings with two places and is drawn as numbers. */
(function () {
  "use strict";

  function data(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function draw(id, labels, datasets, scales) {
    var canvas = document.getElementById(id);
    if (!canvas) return;
    new window.Chart(canvas, {
      type: "bar",
      data: { labels: labels, datasets: datasets },
      options: { animation: false, scales: scales }
    });
    canvas.dataset.ready = "true";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var series = data("report-series");
    if (!series || typeof window.Chart === "undefined") return;
    var counts = { y: { beginAtZero: true, position: "left" } };
    draw("report-chart-orders", series.labels, [
      { label: "orders", data: series.orders, yAxisID: "y" },
      { label: "value", data: series.value.map(Number), type: "line", yAxisID: "money" },
      { label: "discount", data: series.discount.map(Number), type: "line", yAxisID: "money" }
    ], {
      y: counts.y,
      money: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } }
    });
    draw("report-chart-points", series.labels, [
      { label: "issued", data: series.points_issued },
      { label: "spent", data: series.points_spent },
      { label: "expired", data: series.points_expired }
    ], counts);
    draw("report-chart-redemptions", series.labels, [
      { label: "redemptions", data: series.redemptions }
    ], counts);
  });
})();
