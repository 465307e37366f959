// The dashboard's charts (chart.js) and its bottleneck diagram (bpmn-js): both draw the numbers the
// server put into #dashboard-data, which the tables under them show too.
(function () {
  "use strict";
  const source = document.getElementById("dashboard-data");
  if (!source) { return; }
  const data = JSON.parse(source.textContent);

  if (typeof Chart !== "undefined") {
    document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      const spec = data.charts[canvas.dataset.chart];
      if (!spec) { return; }
      const chart = new Chart(canvas, {
        type: spec.type,
        data: { labels: spec.labels, datasets: spec.datasets },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          scales: { x: { stacked: spec.stacked }, y: { stacked: spec.stacked, beginAtZero: true } },
          plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
        },
      });
      canvas.dataset.rendered = chart ? "true" : "false";
    });
  }

  // Path frequency: a gateway's flows count its decisions; any other flow counts what its source did (a task's
  // completions, a start event's cases), or, for an element that only passes the case on, what came in.
  function flowCounts(registry, diagram) {
    const counts = {};
    const connections = registry.filter((e) => e.type === "bpmn:SequenceFlow");
    const sourceCount = (source) => {
      const step = diagram.steps[source.id];
      if (step) { return step.completed; }
      if (source.type === "bpmn:StartEvent") { return diagram.started; }
      const incoming = (source.incoming || []).filter((c) => c.type === "bpmn:SequenceFlow");
      const outgoing = (source.outgoing || []).filter((c) => c.type === "bpmn:SequenceFlow");
      if (!incoming.length || incoming.some((c) => counts[c.id] === undefined)) { return undefined; }
      const total = incoming.reduce((sum, c) => sum + counts[c.id], 0);
      return source.type === "bpmn:ParallelGateway" || outgoing.length === 1 ? total : undefined;
    };
    connections.forEach((c) => { if (diagram.flows[c.id] !== undefined) { counts[c.id] = diagram.flows[c.id]; } });
    for (let pass = 0; pass < connections.length; pass += 1) {
      let changed = false;
      connections.forEach((c) => {
        if (counts[c.id] !== undefined) { return; }
        const n = sourceCount(c.source);
        if (n !== undefined) { counts[c.id] = n; changed = true; }
      });
      if (!changed) { break; }
    }
    return counts;
  }

  const figure = document.getElementById("bottleneck-diagram");
  if (figure && data.diagram && typeof BpmnNavigatedViewer !== "undefined") {
    window.deptflowDiagram.show(figure, (viewer) => {
      const canvas = viewer.get("canvas");
      const registry = viewer.get("elementRegistry");
      const overlays = viewer.get("overlays");
      const label = (text, cls) => {
        const span = document.createElement("span");
        span.className = "df-overlay " + cls;
        span.textContent = text;
        return span;
      };
      Object.entries(data.diagram.steps).forEach(([id, step]) => {
        if (!registry.get(id) || step.wait === null) { return; }
        const band = step.wait < 24 ? "df-wait-fast" : step.wait < 72 ? "df-wait-slow" : "df-wait-stuck";
        canvas.addMarker(id, band);
        overlays.add(id, "wait", { position: { bottom: -4, left: 0 },
          html: label("median " + step.wait + " h · " + step.open + " open", "df-overlay-wait") });
      });
      Object.entries(flowCounts(registry, data.diagram)).forEach(([id, n]) => {
        const flow = registry.get(id);
        const points = flow.waypoints;
        const mid = points[Math.floor((points.length - 1) / 2)];
        const next = points[Math.floor((points.length - 1) / 2) + 1] || mid;
        overlays.add(id, "path", { position: { left: (mid.x + next.x) / 2 - flow.x, top: (mid.y + next.y) / 2 - flow.y },
          html: label(String(n), "df-overlay-flow") });
      });
      figure.dataset.overlays = String(overlays.get({ type: "wait" }).length + overlays.get({ type: "path" }).length);
    });
  }
})();
