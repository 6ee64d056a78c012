/* The campaign page: the daily chart (Chart.js, vendored) and the incentive fields of the chosen types.
   Data comes from json_script blocks (no inline script: CSP). */
(function () {
  "use strict";

  function data(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function row(name) {
    var input = document.getElementById("id_" + name) || document.querySelector('[name="' + name + '"]');
    if (input) return input.closest(".form-row") || input.closest("div.fieldBox");
    return document.querySelector(".field-" + name);
  }

  function show(name, visible) {
    var node = row(name);
    if (node) node.hidden = !visible;
  }

  function incentiveFields() {
    var fields = data("campaign-incentive-fields");
    if (!fields) return;
    var typeInput = document.getElementById("id_type");
    var discountInput = document.getElementById("id_discount_type");
    var fixedType = data("campaign-type");
    var all = {};
    Object.keys(fields.by_type).forEach(function (type) {
      fields.by_type[type].forEach(function (name) { all[name] = true; });
    });
    fields.discount_fields.forEach(function (name) { all[name] = true; });

    function update() {
      var type = typeInput ? typeInput.value : fixedType;
      var wanted = {};
      (fields.by_type[type] || []).forEach(function (name) { wanted[name] = true; });
      if (wanted.discount_type && discountInput) {
        (fields.by_discount[discountInput.value] || []).forEach(function (name) { wanted[name] = true; });
      }
      Object.keys(all).forEach(function (name) { show(name, !!wanted[name]); });
    }

    if (typeInput) typeInput.addEventListener("change", update);
    if (discountInput) discountInput.addEventListener("change", update);
    update();
  }

  function chart() {
    var series = data("campaign-chart-data");
    var canvas = document.getElementById("campaign-chart");
    if (!series || !canvas || typeof window.Chart === "undefined") return;
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: series.days,
        datasets: [
          { label: "redemptions", data: series.redemptions, yAxisID: "y" },
          { label: "validations", data: series.validations, yAxisID: "y" },
          { label: "failed", data: series.failed, yAxisID: "y" },
          { label: "discount", data: series.discount.map(Number), type: "line", yAxisID: "money" }
        ]
      },
      options: {
        animation: false,
        scales: {
          y: { beginAtZero: true, position: "left" },
          money: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } }
        }
      }
    });
    canvas.dataset.ready = "true";
  }

  document.addEventListener("DOMContentLoaded", function () {
    incentiveFields();
    chart();
  });
})();
