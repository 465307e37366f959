// Shared by the case history and the version diff: load a figure's BPMN into the navigated viewer,
// let the page decorate it, fit it, and say on the figure whether it rendered.
window.deptflowDiagram = (function () {
  "use strict";

  function show(figure, decorate) {
    const ids = (name) => (figure.dataset[name] || "").split(" ").filter(Boolean);
    const viewer = new BpmnNavigatedViewer({ container: figure.querySelector(".diagram-canvas") });
    return fetch(figure.dataset.xmlUrl, { credentials: "same-origin" })
      .then((response) => {
        if (!response.ok) { throw new Error("diagram not available (" + response.status + ")"); }
        return response.text();
      })
      .then((xml) => viewer.importXML(xml))
      .then(() => {
        decorate(viewer, ids);
        viewer.get("canvas").zoom("fit-viewport");
        figure.dataset.rendered = "true";
      })
      .catch((error) => {
        figure.dataset.rendered = "error";
        figure.querySelector(".diagram-canvas").textContent = "The diagram could not be shown: " + error.message;
      });
  }

  return { show: show };
})();
