// Shows the diagram of a case with the completed elements, the flows taken and the waiting tasks.
(function () {
  "use strict";
  const figure = document.getElementById("diagram");
  if (!figure || typeof BpmnNavigatedViewer === "undefined") { return; }
  window.deptflowDiagram.show(figure, (viewer, ids) => {
    const canvas = viewer.get("canvas");
    const registry = viewer.get("elementRegistry");
    const mark = (id, marker) => { if (registry.get(id)) { canvas.addMarker(id, marker); } };
    ids("completed").forEach((id) => mark(id, "df-completed"));
    ids("flows").forEach((id) => mark(id, "df-flow-taken"));
    ids("active").forEach((id) => mark(id, "df-active"));
  });
})();
