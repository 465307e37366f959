// Two versions of a diagram: removed and changed elements marked on the old one, added and changed on the new.
(function () {
  "use strict";
  if (typeof BpmnNavigatedViewer === "undefined") { return; }
  const BADGES = { added: "+", removed: "−", changed: "~" };

  function decorate(viewer, ids) {
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
  }

  document.querySelectorAll("figure.diff-diagram").forEach((figure) => window.deptflowDiagram.show(figure, decorate));
})();
