// bpmnlint for the process owners' modeler, bundled for the browser by the Makefile (esbuild, at set-up) into
// web/static/vendor/bpmn/deptflow-bpmnlint.min.js. It defines one global, DeptflowLint = { module, config }:
// `module` is bpmn-js-bpmnlint (passed to the prebuilt modeler as an additional module) and `config` the packed
// { config, resolver } that its `linting.bpmnlint` option expects.
//
// bpmnlint finds rules with require() at run time in Node; in the browser every enabled rule has to be imported
// here explicitly, and the resolver below hands them out. The set is bpmnlint's `recommended` configuration
// with two deliberate changes for deptflow's diagrams:
//   - fake-join is off: looping back into a task (a rework loop) is how the shipped processes are drawn, and
//     SpiffWorkflow runs such a task again for each token, which is what a loop means here;
//   - no-gateway-join-fork is a warning instead of an error: SpiffWorkflow runs such a gateway correctly; the
//     split into two gateways is a matter of style.
// Adding a rule: import it and list it in RULES (category "error", "warn" or "info").
import lintModule from "bpmn-js-bpmnlint";

import adHocSubProcess from "bpmnlint/rules/ad-hoc-sub-process";
import conditionalFlows from "bpmnlint/rules/conditional-flows";
import endEventRequired from "bpmnlint/rules/end-event-required";
import eventBasedGateway from "bpmnlint/rules/event-based-gateway";
import eventSubProcessTypedStartEvent from "bpmnlint/rules/event-sub-process-typed-start-event";
import global from "bpmnlint/rules/global";
import labelRequired from "bpmnlint/rules/label-required";
import linkEvent from "bpmnlint/rules/link-event";
import noBpmndi from "bpmnlint/rules/no-bpmndi";
import noComplexGateway from "bpmnlint/rules/no-complex-gateway";
import noDisconnected from "bpmnlint/rules/no-disconnected";
import noDuplicateSequenceFlows from "bpmnlint/rules/no-duplicate-sequence-flows";
import noGatewayJoinFork from "bpmnlint/rules/no-gateway-join-fork";
import noImplicitEnd from "bpmnlint/rules/no-implicit-end";
import noImplicitSplit from "bpmnlint/rules/no-implicit-split";
import noImplicitStart from "bpmnlint/rules/no-implicit-start";
import noInclusiveGateway from "bpmnlint/rules/no-inclusive-gateway";
import noOverlappingElements from "bpmnlint/rules/no-overlapping-elements";
import singleBlankStartEvent from "bpmnlint/rules/single-blank-start-event";
import singleEventDefinition from "bpmnlint/rules/single-event-definition";
import startEventRequired from "bpmnlint/rules/start-event-required";
import subProcessBlankStartEvent from "bpmnlint/rules/sub-process-blank-start-event";
import superfluousGateway from "bpmnlint/rules/superfluous-gateway";
import superfluousLabel from "bpmnlint/rules/superfluous-label";
import superfluousTermination from "bpmnlint/rules/superfluous-termination";

/** name → [rule factory, category] */
const RULES = {
  "ad-hoc-sub-process": [adHocSubProcess, "error"],
  "conditional-flows": [conditionalFlows, "error"],
  "end-event-required": [endEventRequired, "error"],
  "event-based-gateway": [eventBasedGateway, "error"],
  "event-sub-process-typed-start-event": [eventSubProcessTypedStartEvent, "error"],
  "global": [global, "warn"],
  "label-required": [labelRequired, "error"],
  "link-event": [linkEvent, "error"],
  "no-bpmndi": [noBpmndi, "error"],
  "no-complex-gateway": [noComplexGateway, "error"],
  "no-disconnected": [noDisconnected, "error"],
  "no-duplicate-sequence-flows": [noDuplicateSequenceFlows, "error"],
  "no-gateway-join-fork": [noGatewayJoinFork, "warn"],
  "no-implicit-end": [noImplicitEnd, "error"],
  "no-implicit-split": [noImplicitSplit, "error"],
  "no-implicit-start": [noImplicitStart, "error"],
  "no-inclusive-gateway": [noInclusiveGateway, "warn"],
  "no-overlapping-elements": [noOverlappingElements, "warn"],
  "single-blank-start-event": [singleBlankStartEvent, "error"],
  "single-event-definition": [singleEventDefinition, "error"],
  "start-event-required": [startEventRequired, "error"],
  "sub-process-blank-start-event": [subProcessBlankStartEvent, "error"],
  "superfluous-gateway": [superfluousGateway, "warn"],
  "superfluous-label": [superfluousLabel, "warn"],
  "superfluous-termination": [superfluousTermination, "warn"],
};

const rules = {};
Object.keys(RULES).forEach((name) => { rules[name] = RULES[name][1]; });

/** Hands the bundled rules to bpmnlint's Linter (it asks for package "bpmnlint" and the rule's name). */
const resolver = {
  resolveRule(pkg, ruleName) {
    const entry = pkg === "bpmnlint" ? RULES[ruleName] : undefined;
    if (!entry) { throw new Error("bpmnlint rule <" + pkg + "/" + ruleName + "> is not bundled"); }
    return entry[0];
  },
  resolveConfig(pkg, configName) {
    throw new Error("bpmnlint config <" + pkg + "/" + configName + "> is not bundled");
  },
};

export const module = lintModule;
export const config = { config: { rules: rules }, resolver: resolver };
