// The decision editor: camunda-dmn-js (Camunda 7 flavour) on a published DMN file or a new one; publishing
// sends the whole file (every decision of it becomes its next version). Data comes from data- attributes of
// #dmn-editor; the POST sends the CSRF token in X-CSRFToken.
(function () {
  "use strict";
  const root = document.getElementById("dmn-editor");
  if (!root || typeof DmnModeler === "undefined") { return; }
  const $ = (id) => document.getElementById(id);
  const status = $("status");
  const problems = $("problems");
  const views = $("views");
  const modeler = new DmnModeler({ container: $("canvas") });

  function say(text, state) {
    status.textContent = text;
    status.dataset.state = state || "";
  }

  function showViews() {
    views.replaceChildren();
    const active = modeler.getActiveView();
    modeler.getViews().forEach((view) => {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = "#";
      link.textContent = (view.type === "drd" ? "Requirements diagram" : "Table: ") +
        (view.type === "drd" ? "" : (view.element.name || view.element.id));
      link.dataset.viewType = view.type;
      if (active && view.element === active.element) { link.setAttribute("aria-current", "page"); }
      link.addEventListener("click", (event) => {
        event.preventDefault();
        modeler.open(view).then(showViews);
      });
      item.append(link);
      views.append(item);
    });
  }

  async function load(xml) {
    try {
      const result = await modeler.importXML(xml);
      // open the table of the decision the page is for (else the first table) rather than the diagram
      const tables = modeler.getViews().filter((view) => view.type === "decisionTable");
      const table = tables.find((view) => view.element.id === root.dataset.decisionKey) || tables[0];
      if (table) { await modeler.open(table); }
      showViews();
      const warnings = (result && result.warnings) || [];
      say(warnings.length ? `Opened with ${warnings.length} warning(s).` : "Ready.", "ready");
      root.dataset.ready = "true";
    } catch (error) {
      say(`The file cannot be opened: ${error.message}`, "error");
    }
  }

  function listProblems(list) {
    problems.replaceChildren(...list.map((p) => {
      const item = document.createElement("li");
      item.className = `problem problem-${p.severity}`;
      item.textContent = (p.element_id ? `[${p.element_id}] ` : "") + p.message;
      return item;
    }));
  }

  $("publish").addEventListener("click", async () => {
    say("Publishing…", "busy");
    listProblems([]);
    const { xml } = await modeler.saveXML({ format: true });
    const response = await fetch(root.dataset.publishUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": root.dataset.csrfToken },
      body: JSON.stringify({ xml, note: $("change-note").value, decision_key: root.dataset.decisionKey || null }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      listProblems(body.problems || []);
      say("Not published: fix the problems listed below.", "error");
      return;
    }
    const names = body.decisions.map((d) => `${d.decision_key} version ${d.version}`).join(", ");
    say(`Published: ${names}.`, "published");
  });

  $("export").addEventListener("click", async () => {
    const { xml } = await modeler.saveXML({ format: true });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([xml], { type: "application/xml" }));
    link.download = root.dataset.downloadName;
    link.click();
    URL.revokeObjectURL(link.href);
  });

  $("open-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (file) { await load(await file.text()); }
  });

  modeler.on("views.changed", showViews);
  fetch(root.dataset.xmlUrl, { credentials: "same-origin" })
    .then((response) => response.ok ? response.text() : Promise.reject(new Error(`HTTP ${response.status}`)))
    .then(load)
    .catch((error) => say(`The file cannot be loaded: ${error.message}`, "error"));
}());
