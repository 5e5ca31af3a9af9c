"""gotemplate.py: renders a Helm chart without helm, for the deploy tests.

No helm binary and no Kubernetes are available to the tests, so this module
implements the part of Go's text/template and of Helm's function library
that deploy/helm/tandem uses, and refuses everything else with an error
naming the file and the construct. It is a test tool, stricter than Helm:

- supported: {{ }} actions with {{- / -}} trimming, comments, pipelines,
  parentheses, variables ($, $x := ..., range $i, $v := ...), fields
  (.Values.a.b, $x.a), string/number/bool literals, if / else if / else,
  range (lists and maps, map keys sorted as in Go), with, define, include;
  functions: include quote default toYaml nindent indent int div until
  upper lower trunc trimSuffix printf eq ne not and or empty required fail
  len.
- stricter than Helm: printing a missing value (<no value> in Helm) and
  printing a map or list without toYaml are errors, so a typo in a values
  path fails the test instead of rendering an empty string.
- not modelled: .Capabilities, .Files, lookup, tpl, the sprig functions
  not listed above, Helm's hook and install ordering, and value schemas.

Data flow: render_chart(chart_dir, release, namespace, value_files) loads
Chart.yaml and values.yaml, deep-merges the value files over them (as
helm -f does), parses every file under templates/ (collecting defines),
renders each non-underscore file with the context {Values, Release, Chart}
and returns [(path, text)], like `helm template`.

Python 3.11 standard library plus PyYAML (Debian python3-yaml).
"""

import json
import os
import re

import yaml


class TemplateError(Exception):
    """A template that this renderer (or Helm) would reject."""


# --------------------------------------------------------------------------
# Lexing: text and actions
# --------------------------------------------------------------------------

def _lex(src, name):
    """Splits src into ('text', s) and ('action', body, line) items,
    applying the {{- and -}} whitespace trimming; comments vanish."""
    items = []
    pos = 0
    trim_next = False
    while True:
        start = src.find("{{", pos)
        text = src[pos:] if start < 0 else src[pos:start]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        if start < 0:
            if text:
                items.append(("text", text))
            return items
        body_start = start + 2
        trim_prev = src.startswith("- ", body_start) or \
            src.startswith("-\n", body_start)
        if trim_prev:
            text = text.rstrip(" \t\r\n")
            body_start += 2
        if text:
            items.append(("text", text))
        line = src.count("\n", 0, start) + 1
        rest = src[body_start:].lstrip(" \t\r\n")
        if rest.startswith("/*"):
            close = src.find("*/", body_start)
            if close < 0:
                raise TemplateError("%s:%d: unclosed comment" % (name, line))
            after = close + 2
            m = re.compile(r"\s*(-\s*)?}}").match(src, after)
            if m is None:
                raise TemplateError("%s:%d: comment must end with */}}"
                                    % (name, line))
            trim_next = m.group(1) is not None
            pos = m.end()
            continue
        end = _action_end(src, body_start, name, line)
        body = src[body_start:end]
        trim_next = False
        stripped = body.rstrip()
        if stripped.endswith(" -") or stripped == "-":
            trim_next = True
            body = stripped[:-1]
        items.append(("action", body.strip(), line))
        pos = end + 2


def _action_end(src, pos, name, line):
    """Index of the '}}' closing the action that starts at pos (strings
    may contain '}}')."""
    quote = None
    k = pos
    while k < len(src) - 1:
        c = src[k]
        if quote is not None:
            if c == "\\" and quote == '"':
                k += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"`":
            quote = c
        elif src.startswith("}}", k):
            return k
        k += 1
    raise TemplateError("%s:%d: unclosed action" % (name, line))


# --------------------------------------------------------------------------
# Expressions
# --------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<decl>:=)
  | (?P<assign>=)
  | (?P<punct>[|(),])
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
  | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)


def _tokens(text, where):
    out = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise TemplateError("%s: cannot parse %r" % (where, text[pos:]))
        kind = m.lastgroup
        if kind != "ws":
            out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent over the tokens of one action."""

    def __init__(self, tokens, where):
        self.t = tokens
        self.k = 0
        self.where = where

    def peek(self):
        return self.t[self.k] if self.k < len(self.t) else (None, None)

    def take(self):
        tok = self.peek()
        self.k += 1
        return tok

    def fail(self, msg):
        raise TemplateError("%s: %s" % (self.where, msg))

    def pipeline(self, allow_decl=True):
        """-> {'decl': [names], 'cmds': [[operand...]]}"""
        decl = []
        if allow_decl:
            save = self.k
            names = []
            while self.peek()[0] == "var":
                names.append(self.take()[1])
                if self.peek() == ("punct", ","):
                    self.take()
                    continue
                break
            if names and self.peek()[0] in ("decl", "assign"):
                self.take()
                decl = names
            else:
                self.k = save
        cmds = [self.command()]
        while self.peek() == ("punct", "|"):
            self.take()
            cmds.append(self.command())
        return {"decl": decl, "cmds": cmds}

    def command(self):
        ops = []
        while True:
            kind, val = self.peek()
            if kind is None or (kind == "punct" and val in "|)"):
                break
            ops.append(self.operand())
        if not ops:
            self.fail("empty command")
        return ops

    def operand(self):
        kind, val = self.take()
        if kind == "string":
            return ("lit", json.loads(val))
        if kind == "raw":
            return ("lit", val[1:-1])
        if kind == "number":
            return ("lit", float(val) if "." in val else int(val))
        if kind == "ident":
            if val in ("true", "false"):
                return ("lit", val == "true")
            if val == "nil":
                return ("lit", None)
            return ("func", val)
        if kind == "field":
            return ("field", [] if val == "." else val[1:].split("."))
        if kind == "var":
            parts = val.split(".")
            return ("var", parts[0], parts[1:])
        if (kind, val) == ("punct", "("):
            p = self.pipeline(allow_decl=False)
            if self.take() != ("punct", ")"):
                self.fail("missing )")
            return ("pipe", p)
        self.fail("unexpected %r" % (val,))
        return None


def _parse_pipeline(text, where, allow_decl=True):
    p = _Parser(_tokens(text, where), where)
    pipe = p.pipeline(allow_decl)
    if p.peek()[0] is not None:
        p.fail("unexpected %r" % (p.peek()[1],))
    return pipe


# --------------------------------------------------------------------------
# The tree
# --------------------------------------------------------------------------

_KEYWORD = re.compile(r"^(if|else if|else|end|range|with|define|template"
                      r"|block)\b\s*(.*)$", re.S)


def _parse(items, name, defines):
    """items -> list of nodes; defines collects {name: nodes}."""
    pos = 0

    def block(stop):
        nonlocal pos
        nodes = []
        while pos < len(items):
            item = items[pos]
            if item[0] == "text":
                nodes.append(("text", item[1]))
                pos += 1
                continue
            body, line = item[1], item[2]
            where = "%s:%d" % (name, line)
            m = _KEYWORD.match(body)
            kw = m.group(1) if m else None
            if kw in ("end", "else", "else if"):
                if kw not in stop:
                    raise TemplateError("%s: unexpected {{ %s }}"
                                        % (where, kw))
                return nodes, kw, m.group(2), where
            pos += 1
            if kw is None:
                nodes.append(("action", _parse_pipeline(body, where), where))
            elif kw in ("if", "with"):
                branches = [(_parse_pipeline(m.group(2), where), None)]
                bodies = []
                else_body = []
                while True:
                    sub, end_kw, rest, ewhere = block(
                        ("end", "else", "else if") if kw == "if"
                        else ("end", "else"))
                    pos += 1
                    bodies.append(sub)
                    if end_kw == "else if":
                        branches.append((_parse_pipeline(rest, ewhere), None))
                        continue
                    if end_kw == "else":
                        else_body, end_kw, _, _ = block(("end",))
                        pos += 1
                    break
                conds = [b[0] for b in branches]
                nodes.append((kw, list(zip(conds, bodies)), else_body, where))
            elif kw == "range":
                pipe = _parse_pipeline(m.group(2), where)
                sub, end_kw, _, _ = block(("end", "else"))
                pos += 1
                else_body = []
                if end_kw == "else":
                    else_body, _, _, _ = block(("end",))
                    pos += 1
                nodes.append(("range", pipe, sub, else_body, where))
            elif kw == "define":
                dname = json.loads(m.group(2).strip())
                sub, _, _, _ = block(("end",))
                pos += 1
                if dname in defines:
                    raise TemplateError("%s: %s defined twice"
                                        % (where, dname))
                defines[dname] = (sub, name)
            else:
                raise TemplateError("%s: {{ %s }} is not supported by this "
                                    "renderer (use include)" % (where, kw))
        if stop != ("<eof>",):
            raise TemplateError("%s: missing {{ end }}" % name)
        return nodes, None, None, None

    nodes, _, _, _ = block(("<eof>",))
    return nodes


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------

def _truth(v):
    """Go's truth: false, 0, nil and empty strings, lists and maps are
    false."""
    if v is None or isinstance(v, bool):
        return bool(v)
    if isinstance(v, (int, float)):
        return v != 0
    if isinstance(v, (str, list, dict)):
        return len(v) > 0
    return True


def _to_str(v, where):
    if v is None:
        raise TemplateError("%s: a missing value would print as <no value>"
                            % where)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        raise TemplateError("%s: printing a map or list needs toYaml"
                            % where)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _indent(n, s):
    pad = " " * n
    return pad + s.replace("\n", "\n" + pad)


def _go_printf(fmt, args, where):
    out = []
    k = 0
    a = 0
    while k < len(fmt):
        c = fmt[k]
        if c != "%":
            out.append(c)
            k += 1
            continue
        verb = fmt[k + 1] if k + 1 < len(fmt) else ""
        k += 2
        if verb == "%":
            out.append("%")
            continue
        if a >= len(args):
            raise TemplateError("%s: printf: too few arguments" % where)
        v = args[a]
        a += 1
        if verb in ("s", "v", "d"):
            out.append(_to_str(v, where))
        elif verb == "q":
            out.append(json.dumps(_to_str(v, where)))
        else:
            raise TemplateError("%s: printf verb %%%s not supported"
                                % (where, verb))
    return "".join(out)


class _Renderer:
    def __init__(self, defines):
        self.defines = defines
        self.depth = 0

    def funcs(self, name, args, where):
        def need(n):
            if len(args) != n:
                raise TemplateError("%s: %s takes %d arguments, got %d"
                                    % (where, name, n, len(args)))
        if name == "include":
            need(2)
            if args[0] not in self.defines:
                raise TemplateError("%s: no template %r" % (where, args[0]))
            nodes, _ = self.defines[args[0]]
            self.depth += 1
            if self.depth > 50:
                raise TemplateError("%s: include nested too deeply" % where)
            try:
                return self.render(nodes, args[1], args[1], [{}])
            finally:
                self.depth -= 1
        if name == "quote":
            return " ".join(json.dumps(_to_str(v, where)) for v in args)
        if name == "default":
            need(2)
            return args[1] if _truth(args[1]) else args[0]
        if name == "toYaml":
            need(1)
            return yaml.safe_dump(args[0], default_flow_style=False,
                                  sort_keys=True).rstrip("\n")
        if name == "nindent":
            need(2)
            return "\n" + _indent(int(args[0]), _to_str(args[1], where))
        if name == "indent":
            need(2)
            return _indent(int(args[0]), _to_str(args[1], where))
        if name == "int":
            need(1)
            try:
                return int(args[0])
            except (TypeError, ValueError):
                raise TemplateError("%s: int of %r" % (where, args[0]))
        if name == "div":
            need(2)
            if int(args[1]) == 0:
                raise TemplateError("%s: division by zero" % where)
            return int(int(args[0]) / int(args[1]))
        if name == "until":
            need(1)
            return list(range(int(args[0])))
        if name in ("upper", "lower"):
            need(1)
            s = _to_str(args[0], where)
            return s.upper() if name == "upper" else s.lower()
        if name == "trunc":
            need(2)
            return _to_str(args[1], where)[:int(args[0])]
        if name == "trimSuffix":
            need(2)
            s = _to_str(args[1], where)
            return s[:-len(args[0])] if args[0] and s.endswith(args[0]) \
                else s
        if name == "printf":
            return _go_printf(args[0], args[1:], where)
        if name in ("eq", "ne"):
            need(2)
            return (args[0] == args[1]) == (name == "eq")
        if name == "not":
            need(1)
            return not _truth(args[0])
        if name == "and":
            for v in args:
                if not _truth(v):
                    return v
            return args[-1]
        if name == "or":
            for v in args:
                if _truth(v):
                    return v
            return args[-1]
        if name == "empty":
            need(1)
            return not _truth(args[0])
        if name == "required":
            need(2)
            if not _truth(args[1]):
                raise TemplateError("%s: required: %s" % (where, args[0]))
            return args[1]
        if name == "fail":
            need(1)
            raise TemplateError("%s: fail: %s" % (where, args[0]))
        if name == "len":
            need(1)
            return len(args[0])
        raise TemplateError("%s: function %r is not supported by this "
                            "renderer" % (where, name))

    def lookup(self, base, path, where):
        v = base
        for part in path:
            if v is None:
                raise TemplateError("%s: nil pointer evaluating .%s"
                                    % (where, part))
            if not isinstance(v, dict):
                raise TemplateError("%s: can't evaluate field %s in %r"
                                    % (where, part, type(v).__name__))
            v = v.get(part)
        return v

    def var(self, scopes, name, where):
        for scope in reversed(scopes):
            if name in scope:
                return scope[name]
        raise TemplateError("%s: undefined variable %s" % (where, name))

    def operand(self, op, dot, scopes, where):
        kind = op[0]
        if kind == "lit":
            return op[1]
        if kind == "field":
            return self.lookup(dot, op[1], where)
        if kind == "var":
            return self.lookup(self.var(scopes, op[1], where), op[2], where)
        if kind == "pipe":
            return self.pipeline(op[1], dot, scopes, where)
        if kind == "func":
            return self.funcs(op[1], [], where)
        raise TemplateError("%s: bad operand" % where)

    def pipeline(self, pipe, dot, scopes, where):
        value = None
        for n, cmd in enumerate(pipe["cmds"]):
            first = cmd[0]
            if first[0] == "func":
                args = [self.operand(op, dot, scopes, where)
                        for op in cmd[1:]]
                if n > 0:
                    args.append(value)
                value = self.funcs(first[1], args, where)
            else:
                if len(cmd) != 1 or n > 0:
                    raise TemplateError("%s: can't give arguments to a "
                                        "non-function" % where)
                value = self.operand(first, dot, scopes, where)
        for name in pipe["decl"]:
            scopes[-1][name] = value
        return value

    def render(self, nodes, dot, root, scopes):
        out = []
        scopes[0].setdefault("$", root)
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "action":
                v = self.pipeline(node[1], dot, scopes, node[2])
                if not node[1]["decl"]:
                    out.append(_to_str(v, node[2]))
            elif kind == "if":
                for cond, body in node[1]:
                    scopes.append({})
                    taken = _truth(self.pipeline(cond, dot, scopes, node[3]))
                    if taken:
                        out.append(self.render(body, dot, root, scopes))
                    scopes.pop()
                    if taken:
                        break
                else:
                    out.append(self.render(node[2], dot, root,
                                           scopes + [{}]))
            elif kind == "with":
                cond, body = node[1][0]
                scopes.append({})
                v = self.pipeline(cond, dot, scopes, node[3])
                if _truth(v):
                    out.append(self.render(body, v, root, scopes))
                else:
                    out.append(self.render(node[2], dot, root, scopes))
                scopes.pop()
            elif kind == "range":
                pipe, body, else_body, where = node[1], node[2], node[3], \
                    node[4]
                names = pipe["decl"]
                seq = self.pipeline(dict(pipe, decl=[]), dot, scopes, where)
                if isinstance(seq, dict):
                    pairs = [(k, seq[k]) for k in sorted(seq)]
                elif isinstance(seq, list):
                    pairs = list(enumerate(seq))
                elif seq is None:
                    pairs = []
                else:
                    raise TemplateError("%s: range over %r"
                                        % (where, type(seq).__name__))
                if not pairs:
                    out.append(self.render(else_body, dot, root,
                                           scopes + [{}]))
                for key, item in pairs:
                    scope = {}
                    if len(names) == 1:
                        scope[names[0]] = item
                    elif len(names) == 2:
                        scope[names[0]] = key
                        scope[names[1]] = item
                    out.append(self.render(body, item, root,
                                           scopes + [scope]))
        return "".join(out)


# --------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------

def deep_merge(base, over):
    """helm -f semantics: maps merge key by key, anything else replaces,
    null deletes."""
    out = dict(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_values(chart_dir, value_files=()):
    with open(os.path.join(chart_dir, "values.yaml")) as f:
        values = yaml.safe_load(f) or {}
    for path in value_files:
        with open(path) as f:
            values = deep_merge(values, yaml.safe_load(f) or {})
    return values


def render_chart(chart_dir, release, namespace, value_files=()):
    """-> [(relative template path, rendered text)] for every template
    that is not a partial (name starting with '_')."""
    with open(os.path.join(chart_dir, "Chart.yaml")) as f:
        chart = yaml.safe_load(f)
    values = load_values(chart_dir, value_files)
    context = {
        "Values": values,
        "Release": {"Name": release, "Namespace": namespace,
                    "Service": "Helm", "IsInstall": True,
                    "IsUpgrade": False, "Revision": 1},
        "Chart": {"Name": chart["name"], "Version": chart["version"],
                  "AppVersion": chart.get("appVersion", "")},
    }
    tdir = os.path.join(chart_dir, "templates")
    defines = {}
    trees = []
    for fname in sorted(os.listdir(tdir)):
        rel = "%s/templates/%s" % (chart["name"], fname)
        with open(os.path.join(tdir, fname)) as f:
            tree = _parse(_lex(f.read(), rel), rel, defines)
        if not fname.startswith("_"):
            trees.append((rel, tree))
    renderer = _Renderer(defines)
    return [(rel, renderer.render(tree, context, context, [{}]))
            for rel, tree in trees]


def render_documents(chart_dir, release, namespace, value_files=()):
    """-> [(source, text)] of the non-empty YAML documents, split at ---
    as helm template does."""
    docs = []
    for rel, text in render_chart(chart_dir, release, namespace,
                                  value_files):
        for part in re.split(r"(?m)^---[ \t]*$", text):
            if part.strip():
                docs.append((rel, part.strip("\n") + "\n"))
    return docs


def main(argv):
    import argparse
    p = argparse.ArgumentParser(
        prog="gotemplate.py",
        description="Render a Helm chart without helm (see module doc).")
    p.add_argument("chart")
    p.add_argument("--release", default="tandem")
    p.add_argument("--namespace", default="default")
    p.add_argument("-f", "--values", action="append", default=[])
    args = p.parse_args(argv)
    for rel, text in render_documents(args.chart, args.release,
                                      args.namespace, args.values):
        print("---\n# Source: %s\n%s" % (rel, text), end="")
    return 0


if __name__ == "__main__":
    import sys
    try:
        sys.exit(main(sys.argv[1:]))
    except TemplateError as e:
        print("gotemplate.py: %s" % e, file=sys.stderr)
        sys.exit(1)
