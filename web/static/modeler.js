// The process owners' modeler: camunda-bpmn-js (Camunda 7 properties panel), drafts, validation, publishing.
// Data comes from data- attributes of #modeler; every POST sends the CSRF token in X-CSRFToken.
// bpmnlint runs in the browser through bpmn-js-bpmnlint (DeptflowLint, bundled from web/lint/ at set-up):
// overlays on the canvas, a toggle, and its issues listed under the server's report.
(function () {
  "use strict";
  const root = document.getElementById("modeler");
  if (!root || typeof BpmnModeler === "undefined") { return; }
  const $ = (id) => document.getElementById(id);
  const status = $("status");
  const problemList = $("problems");
  const summary = $("report-summary");
  const acknowledgeBox = $("acknowledge-box");
  const acknowledge = $("acknowledge");
  const buttons = ["save-draft", "validate", "publish", "export"].map($);
  const lintBox = $("lint");
  const lintList = $("lint-problems");
  const lintSummary = $("lint-summary");
  const lintToggle = $("lint-overlays");
  let dirty = false;
  let marked = [];

  const lint = typeof DeptflowLint === "undefined" ? null : DeptflowLint;
  const modeler = new BpmnModeler({
    container: $("canvas"),
    propertiesPanel: { parent: $("properties") },
    additionalModules: lint ? [lint.module] : [],
    linting: lint ? { bpmnlint: lint.config, active: lintToggle.checked } : undefined,
  });
  const canvas = modeler.get("canvas");
  const registry = modeler.get("elementRegistry");

  function say(text, state) {
    status.textContent = text;
    status.dataset.state = state || "";
  }

  function busy(on) {
    buttons.forEach((button) => { button.disabled = on; });
    root.setAttribute("aria-busy", on ? "true" : "false");
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": root.dataset.csrfToken },
      body: JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    if (data === null) { throw new Error("the server answered " + response.status); }
    return { status: response.status, data: data };
  }

  async function currentXml() {
    const result = await modeler.saveXML({ format: true });
    return result.xml;
  }

  function note() { return $("change-note").value.trim(); }

  // --- the validation report -------------------------------------------------------------

  /** The diagram element for a problem's element id (a process id selects its pool). */
  function elementFor(id) {
    if (!id) { return null; }
    const element = registry.get(id);
    if (element) { return element; }
    return registry.find((candidate) => {
      const bo = candidate.businessObject;
      return candidate.type === "bpmn:Participant" && bo && bo.processRef && bo.processRef.id === id;
    }) || null;
  }

  function select(id) {
    const element = elementFor(id);
    if (!element) { return; }
    modeler.get("selection").select(element);
    if (typeof canvas.scrollToElement === "function") { canvas.scrollToElement(element, { top: 80, left: 80 }); }
  }

  function clearMarks() {
    marked.forEach(([id, marker]) => { if (registry.get(id)) { canvas.removeMarker(id, marker); } });
    marked = [];
  }

  function showReport(report) {
    clearMarks();
    problemList.replaceChildren();
    const errors = report.errors || 0;
    const warnings = report.warnings || 0;
    if (!report.problems || report.problems.length === 0) {
      summary.textContent = "No problems: the diagram can be published.";
      summary.className = "report-ok";
    } else {
      summary.textContent = errors + " error" + (errors === 1 ? "" : "s") + ", " + warnings + " warning" +
        (warnings === 1 ? "" : "s") + (errors ? ": fix the errors to publish." : ": acknowledge them to publish.");
      summary.className = "";
    }
    (report.problems || []).forEach((problem) => {
      const item = document.createElement("li");
      item.className = "problem problem-" + problem.severity;
      item.dataset.elementId = problem.element_id || "";
      const severity = document.createElement("span");
      severity.className = "severity";
      severity.textContent = problem.severity;
      item.append(severity);
      if (problem.element_id) {
        const link = document.createElement("button");
        link.type = "button";
        link.className = "element-id outline secondary";
        link.textContent = problem.element_id;
        const element = elementFor(problem.element_id);
        if (element) {
          link.title = "Select " + problem.element_id + " in the diagram";
          link.addEventListener("click", () => select(problem.element_id));
          const marker = "df-problem-" + (problem.severity === "error" ? "error" : "warning");
          canvas.addMarker(element.id, marker);
          marked.push([element.id, marker]);
        } else {
          link.disabled = true;
          link.title = "Not drawn in the diagram";
        }
        item.append(link);
      }
      item.append(document.createTextNode(problem.message));
      // a group that is no role, or Java code: administrators map it on the Groups / Java delegates page
      appendMapLink(item, "group", problem.group, root.dataset.groupsUrl, "a role");
      appendMapLink(item, "delegate", problem.delegate, root.dataset.delegatesUrl, "an external task topic");
      problemList.append(item);
    });
    acknowledgeBox.hidden = !(errors === 0 && warnings > 0);
    if (acknowledgeBox.hidden) { acknowledge.checked = false; }
  }

  // --- bpmnlint, in the browser --------------------------------------------------------

  const LINT_SEVERITY = { error: "error", "rule-error": "error", warn: "warning", info: "info" };
  const LINT_ORDER = { error: 0, warning: 1, info: 2 };

  /** A link to the admin page where `name` (a group, a Java delegate) is mapped to `target`, after `item`. */
  function appendMapLink(item, kind, name, pageUrl, target) {
    if (!name || !pageUrl) return;
    const map = document.createElement("a");
    map.className = "map-" + kind;
    map.href = pageUrl + "?" + kind + "=" + encodeURIComponent(name) + "#map";
    map.textContent = "Map “" + name + "” to " + target;
    item.append(" ", map);
  }

  function plural(count, word) { return count + " " + word + (count === 1 ? "" : "s"); }

  /** bpmn-js-bpmnlint's issues (grouped by the element that shows them) as one list, errors first. */
  function lintIssues(issues) {
    const list = [];
    Object.keys(issues || {}).forEach((shownOn) => {
      issues[shownOn].forEach((issue) => {
        list.push({
          elementId: issue.actualElementId || issue.id || shownOn,
          shownOn: shownOn,
          severity: LINT_SEVERITY[issue.category] || "warning",
          message: issue.message,
          rule: issue.rule,
        });
      });
    });
    return list.sort((a, b) => (LINT_ORDER[a.severity] - LINT_ORDER[b.severity]) ||
      a.elementId.localeCompare(b.elementId) || a.rule.localeCompare(b.rule));
  }

  function showLint(issues) {
    const list = lintIssues(issues);
    lintList.replaceChildren();
    const errors = list.filter((issue) => issue.severity === "error").length;
    const warnings = list.filter((issue) => issue.severity === "warning").length;
    const infos = list.length - errors - warnings;
    lintBox.dataset.errors = String(errors);
    lintBox.dataset.warnings = String(warnings);
    if (list.length === 0) {
      lintSummary.textContent = "No lint issues.";
      lintSummary.className = "report-ok";
    } else {
      lintSummary.textContent = plural(errors, "error") + ", " + plural(warnings, "warning") +
        (infos ? ", " + plural(infos, "note") : "") + ".";
      lintSummary.className = "";
    }
    list.forEach((issue) => {
      const item = document.createElement("li");
      item.className = "problem problem-lint problem-" + issue.severity;
      item.dataset.elementId = issue.elementId;
      item.dataset.rule = issue.rule;
      const severity = document.createElement("span");
      severity.className = "severity";
      severity.textContent = issue.severity;
      item.append(severity);
      const link = document.createElement("button");
      link.type = "button";
      link.className = "element-id outline secondary";
      link.textContent = issue.elementId;
      // An element that is not drawn (a process inside a pool, say) selects the shape that shows its issue.
      const target = elementFor(issue.elementId) ? issue.elementId : issue.shownOn;
      if (elementFor(target)) {
        link.title = "Select " + target + " in the diagram";
        link.addEventListener("click", () => select(target));
      } else {
        link.disabled = true;
        link.title = "Not drawn in the diagram";
      }
      item.append(link);
      item.append(document.createTextNode(issue.message + " "));
      const rule = document.createElement("span");
      rule.className = "rule";
      rule.textContent = "[" + issue.rule + "]";
      item.append(rule);
      lintList.append(item);
    });
  }

  if (lint) {
    lintBox.hidden = false;
    const linting = modeler.get("linting");
    modeler.get("eventBus").on("linting.completed", (event) => showLint(event.issues));
    modeler.get("eventBus").on("linting.toggle", (event) => { lintToggle.checked = event.active; });
    lintToggle.addEventListener("change", () => linting.toggle(lintToggle.checked));
  }

  async function validate() {
    const result = await post(root.dataset.validateUrl, { xml: await currentXml() });
    showReport(result.data);
    return result.data;
  }

  // --- actions -------------------------------------------------------------------------

  function addDraftRow(draft) {
    const body = document.querySelector("#drafts tbody");
    body.querySelectorAll("tr.empty").forEach((row) => row.remove());
    const row = document.createElement("tr");
    row.dataset.draftId = String(draft.id);
    const cells = ["#" + draft.id, draft.saved_at, draft.author || "—", draft.note || "—"];
    cells.forEach((text, index) => {
      const cell = document.createElement("td");
      if (index === 0) {
        const link = document.createElement("a");
        link.href = draft.edit_url;
        link.textContent = text;
        cell.append(link);
      } else {
        cell.textContent = text;
      }
      row.append(cell);
    });
    body.prepend(row);
  }

  async function saveDraft() {
    const result = await post(root.dataset.saveUrl, {
      xml: await currentXml(), note: note(), process_key: root.dataset.processKey,
    });
    if (result.status !== 201) {
      showReport({ problems: result.data.problems || [], errors: (result.data.problems || []).length, warnings: 0 });
      say("The draft was not saved: " + ((result.data.problems || [])[0] || {}).message, "error");
      return;
    }
    dirty = false;
    addDraftRow(result.data);
    say("Saved draft #" + result.data.id + " at " + result.data.saved_at + ".", "saved");
  }

  async function publish() {
    const result = await post(root.dataset.publishUrl, {
      xml: await currentXml(), note: note(), acknowledge: acknowledge.checked, process_key: root.dataset.processKey,
    });
    if (result.status === 200) {
      dirty = false;
      const data = result.data;
      status.replaceChildren();
      status.dataset.state = "published";
      status.append(document.createTextNode(data.created
        ? "Published version " + data.version + ". New cases use it; running cases stay on their version. "
        : "Nothing to publish: version " + data.version + " has exactly this diagram. "));
      const link = document.createElement("a");
      link.href = data.process_url;
      link.textContent = "All versions";
      status.append(link);
      acknowledgeBox.hidden = true;
      acknowledge.checked = false;
      await validate();
      return;
    }
    if (result.data.report) {
      showReport(result.data.report);
      say(result.data.needs_acknowledgement
        ? "Not published: read the warnings, tick the box and publish again."
        : "Not published: the diagram has errors.", "error");
    } else {
      say("Not published (" + result.status + ").", "error");
    }
  }

  async function exportXml() {
    const xml = await currentXml();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([xml], { type: "application/xml" }));
    link.download = root.dataset.processKey + ".bpmn";
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  function action(button, work) {
    button.addEventListener("click", async () => {
      busy(true);
      try {
        await work();
      } catch (error) {
        say("Something went wrong: " + error.message, "error");
      } finally {
        busy(false);
      }
    });
  }

  action($("save-draft"), saveDraft);
  action($("validate"), async () => {
    const report = await validate();
    say(report.ok ? "Validated." : "Validated: see the problems below.", report.ok ? "saved" : "error");
  });
  action($("publish"), publish);
  action($("export"), exportXml);

  modeler.get("eventBus").on("commandStack.changed", () => {
    dirty = true;
    say("Unsaved changes.", "dirty");
  });

  // --- load ------------------------------------------------------------------------------

  /** Zoom the whole diagram into the canvas, clear of the tool palette on its left. */
  function fitBesidePalette() {
    canvas.zoom("fit-viewport", "auto");
    const palette = document.querySelector("#canvas .djs-palette");
    const left = palette ? palette.offsetLeft + palette.offsetWidth + 12 : 0;
    const box = canvas.viewbox();
    if (!box.inner.width || !box.inner.height) { return; }
    const scale = Math.min((box.outer.width - left - 12) / box.inner.width,
      (box.outer.height - 24) / box.inner.height, 1);
    canvas.zoom(scale);
    const now = canvas.viewbox();
    canvas.scroll({
      dx: left - (now.inner.x - now.x) * now.scale,
      dy: (now.outer.height - now.inner.height * now.scale) / 2 - (now.inner.y - now.y) * now.scale,
    });
  }

  busy(true);
  fetch(root.dataset.xmlUrl, { credentials: "same-origin" })
    .then((response) => {
      if (!response.ok) { throw new Error("the diagram could not be loaded (" + response.status + ")"); }
      return response.text();
    })
    .then((xml) => modeler.importXML(xml))
    .then(() => {
      fitBesidePalette();
      root.dataset.ready = "true";
      say(dirty ? "Unsaved changes." : "Ready.", "");
      busy(false);
      return validate();
    })
    .catch((error) => {
      root.dataset.ready = "error";
      busy(false);
      say("The diagram could not be opened: " + error.message, "error");
    });
})();
