// Two versions of a diagram: removed and changed elements marked on the old one, added and changed on the new.
(function () {
  "use strict";
  if (typeof BpmnNavigatedViewer === "undefined") { return; }
  const BADGES = { added: "+", removed: "−", changed: "~" };

  function show(figure) {
    const ids = (name) => (figure.dataset[name] || "").split(" ").filter(Boolean);
    const viewer = new BpmnNavigatedViewer({ container: figure.querySelector(".diagram-canvas") });
    return fetch(figure.dataset.xmlUrl, { credentials: "same-origin" })
      .then((response) => {
        if (!response.ok) { throw new Error("diagram not available (" + response.status + ")"); }
        return response.text();
      })
      .then((xml) => viewer.importXML(xml))
      .then(() => {
        const canvas = viewer.get("canvas");
        const registry = viewer.get("elementRegistry");
        const overlays = viewer.get("overlays");
        Object.keys(BADGES).forEach((kind) => {
          ids(kind).forEach((id) => {
            const element = registry.get(id);
            if (!element) { return; }
            canvas.addMarker(id, "df-" + kind);
            const badge = document.createElement("span");
            badge.className = "diff-badge diff-badge-" + kind;
            badge.title = kind;
            badge.textContent = BADGES[kind];
            overlays.add(id, "deptflow-diff", { position: { top: -10, right: 10 }, html: badge });
          });
        });
        canvas.zoom("fit-viewport");
        figure.dataset.rendered = "true";
      })
      .catch((error) => {
        figure.dataset.rendered = "error";
        figure.querySelector(".diagram-canvas").textContent = "The diagram could not be shown: " + error.message;
      });
  }

  document.querySelectorAll("figure.diff-diagram").forEach(show);
})();
