"""The Create a model form: name, kind, and that kind's parameters as generated widgets.

The widgets come from ``describe_kinds()``: a dropdown for a parameter with choices, a checkbox
for a boolean, else a text field holding the default. Values go through the kind's own schema
(the one gate the CLI uses too); a refusal shows its reason beside the field and creates nothing.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from functools import partial

import ipywidgets as w

from m5ops.dashboard import actions
from m5ops.dashboard.widgets import Actions, button, css, html_cell, shared_layout
from m5ops.errors import M5opsError
from m5ops.models import describe_kinds, get_kind
from m5ops.stores.registry import check_name
from m5ops.stores.layout import Workspace

NAME_FIELD = "name"


@dataclass
class FormCheck:
    """A form's values after checking: clean parameters, or the problem of each field."""

    name: str
    kind: str
    params: dict = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_form(name: str, kind: str, raw: dict, taken: set[str] = frozenset()) -> FormCheck:
    """Check a name and raw widget values against the kind's schema, field by field."""
    result = FormCheck(name=name.strip(), kind=kind)
    try:
        check_name(result.name)
        if result.name in taken:
            raise M5opsError(f"a model named {result.name!r} already exists; pick another name or delete it first")
    except M5opsError as exc:
        result.errors[NAME_FIELD] = str(exc)
    schema = get_kind(kind).schema
    for param in schema:
        try:
            result.params[param.name] = param.check(raw.get(param.name, param.default))
        except M5opsError as exc:
            result.errors[param.name] = str(exc)
    return result


def param_widget(spec: dict) -> w.ValueWidget:
    """The input widget of one parameter described by ``ParamSchema.describe``, at its default."""
    if spec["choices"]:
        widget = w.Dropdown(options=spec["choices"], value=spec["default"])
    elif spec["type"] == "bool":
        widget = w.Checkbox(value=bool(spec["default"]), indent=False)
    else:
        widget = w.Text(value=str(spec["default"]))
    widget.layout = shared_layout(width="160px")
    return css(widget, "m5-param", f"m5-param-{spec['name']}")


def _allowed(spec: dict) -> str:
    """The range or choices in words, shown as the field's hint."""
    if spec["choices"]:
        return "one of " + ", ".join(map(str, spec["choices"]))
    if spec["low"] is not None or spec["high"] is not None:
        return f"{spec['type']} in [{spec['low']}, {spec['high']}]"
    return spec["type"]


class CreateForm:
    """The form; ``submit`` checks it and, when every field is valid, creates the model."""

    def __init__(self, workspace: Workspace, actions_runner: Actions, taken=lambda: set()):
        self.workspace, self.actions, self.taken = workspace, actions_runner, taken
        self.kinds = describe_kinds()
        self.name = css(w.Text(placeholder="e.g. lgbm-fast", layout=w.Layout(width="160px")), "m5-create-name")
        self.kind = css(w.Dropdown(options=list(self.kinds), value=self._default_kind(),
                                   layout=w.Layout(width="160px")), "m5-create-kind")
        self.active = css(w.Checkbox(value=True, description="train on schedule (active)", indent=False),
                          "m5-create-active")
        self.errors: dict[str, w.HTML] = {NAME_FIELD: self._error_label(NAME_FIELD)}
        self.inputs: dict[str, w.ValueWidget] = {}
        self.params_box = css(w.VBox([]), "m5-create-params")
        self.description = css(w.HTML(), "m5-kind-description")
        self.create = button("Create model", "m5-create-submit", "success", width="160px")
        self.create.on_click(lambda _: self.submit())
        self.kind.observe(lambda change: self._build_params(), names="value")
        self._build_params()
        self.widget = css(w.VBox([
            w.HTML("<h3>Create a model</h3>"),
            w.HBox([w.Label("name", layout=w.Layout(width="330px")), self.name, self.errors[NAME_FIELD]]),
            w.HBox([w.Label("kind", layout=w.Layout(width="330px")), self.kind, self.description]),
            self.params_box, self.active, self.create]), "m5-create")

    def _default_kind(self) -> str:
        return "lightgbm" if "lightgbm" in self.kinds else next(iter(self.kinds))

    @staticmethod
    def _error_label(field_name: str) -> w.HTML:
        return css(html_cell(), "m5-error", f"m5-error-{field_name}")

    def _build_params(self) -> None:
        """One row per parameter of the chosen kind, filled with its defaults."""
        info = self.kinds[self.kind.value]
        self.description.value = f"<i>{html.escape(info['description'])}</i>"
        self.errors = {NAME_FIELD: self.errors[NAME_FIELD]}
        self.inputs, rows = {}, []
        for spec in info["params"]:
            self.inputs[spec["name"]] = param_widget(spec)
            self.errors[spec["name"]] = self._error_label(spec["name"])
            label = html_cell(f"<span title='{html.escape(spec['help'], quote=True)}'>{html.escape(spec['name'])}"
                              f" <small style='color:#777'>{html.escape(_allowed(spec))}</small></span>", width="330px")
            rows.append(w.HBox([label, self.inputs[spec["name"]], self.errors[spec["name"]]], layout=shared_layout()))
        self.params_box.children = rows

    def values(self) -> dict:
        """The raw values of the parameter widgets."""
        return {name: widget.value for name, widget in self.inputs.items()}

    def show_errors(self, errors: dict[str, str]) -> None:
        """Each field's problem beside it; clears the others."""
        for field_name, label in self.errors.items():
            text = errors.get(field_name, "")
            label.value = f"<span style='color:#b00020'>{html.escape(text)}</span>" if text else ""

    def submit(self) -> FormCheck:
        """Check every field; create the model only if all are valid. Returns the check."""
        checked = check_form(self.name.value, self.kind.value, self.values(), set(self.taken()))
        self.show_errors(checked.errors)
        if not checked.ok:
            fields = ", ".join(checked.errors)
            self.actions.messages.show(f"Create refused: fix {fields} (reason beside each field); nothing was created",
                                       "error")
            return checked
        self.create.disabled = True
        work = partial(actions.create, self.workspace, checked.name, checked.kind, checked.params, self.active.value)
        self.actions.run(f"Create {checked.name}", work, partial(self._created, checked))
        return checked

    def _created(self, checked: FormCheck, ok: bool, text: str) -> None:
        """After the create action: clear the name on success, else show the refusal beside it."""
        self.create.disabled = False
        if ok:
            self.name.value = ""
        else:
            self.show_errors({NAME_FIELD: text})
