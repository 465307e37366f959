// Shows the diagram of a case with the completed elements, the flows taken and the waiting tasks.
(function () {
  "use strict";
  const figure = document.getElementById("diagram");
  if (!figure || typeof BpmnNavigatedViewer === "undefined") { return; }
  const ids = (name) => (figure.dataset[name] || "").split(" ").filter(Boolean);
  const viewer = new BpmnNavigatedViewer({ container: figure.querySelector(".diagram-canvas") });

  fetch(figure.dataset.xmlUrl, { credentials: "same-origin" })
    .then((response) => {
      if (!response.ok) { throw new Error("diagram not available (" + response.status + ")"); }
      return response.text();
    })
    .then((xml) => viewer.importXML(xml))
    .then(() => {
      const canvas = viewer.get("canvas");
      const registry = viewer.get("elementRegistry");
      const mark = (id, marker) => { if (registry.get(id)) { canvas.addMarker(id, marker); } };
      ids("completed").forEach((id) => mark(id, "df-completed"));
      ids("flows").forEach((id) => mark(id, "df-flow-taken"));
      ids("active").forEach((id) => mark(id, "df-active"));
      canvas.zoom("fit-viewport");
      figure.dataset.rendered = "true";
    })
    .catch((error) => {
      figure.dataset.rendered = "error";
      figure.querySelector(".diagram-canvas").textContent = "The diagram could not be shown: " + error.message;
    });
})();
