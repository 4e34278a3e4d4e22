"""Small, C-aware text surgery used by the strip step.

Everything here works on the text of one C file.  Comments, string and
character literals and preprocessor lines are masked out (replaced by
spaces of the same length) before any searching, so brace depth and token
matches never see them.  Edits are keyed on names: "drop the definition of
function X", "drop enum member Y", "treat calls of predicate Z as false",
never on stored copies of the code being removed.

Constant folding uses two sentinels, FALSE and TRUE, that cannot occur in
kernel source.  A predicate call is replaced by FALSE; then the enclosing
boolean expression is folded, and an `if` whose condition became constant
loses its dead branch.  A sentinel left where it cannot be folded further
(a function argument, an initializer) becomes plain `false`/`true`.
"""

import re

FALSE = "__STRIP_FALSE__"
TRUE = "__STRIP_TRUE__"
SENTINEL_RE = re.compile(r"__STRIP_(?:FALSE|TRUE)__")
IDENT = r"[A-Za-z_]\w*"


class StripError(Exception):
    pass


def mask(text):
    """Return text with comments, literals and preprocessor lines blanked."""
    out = list(text)
    i, n = 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c == "#" or (line_start and c in " \t" and
                                       text[i:].lstrip(" \t").startswith("#")):
            # preprocessor directive, with backslash continuations
            j = i
            while True:
                e = text.find("\n", j)
                if e < 0:
                    e = n
                if e > 0 and text[e - 1] == "\\" and e < n:
                    j = e + 1
                    continue
                break
            for k in range(i, e):
                if out[k] != "\n":
                    out[k] = " "
            i = e
            continue
        if c == "\n":
            line_start = True
            i += 1
            continue
        if c not in " \t":
            line_start = False
        if text.startswith("/*", i):
            e = text.find("*/", i + 2)
            e = n if e < 0 else e + 2
            for k in range(i, e):
                if out[k] != "\n":
                    out[k] = " "
            i = e
            continue
        if text.startswith("//", i):
            e = text.find("\n", i)
            e = n if e < 0 else e
            for k in range(i, e):
                out[k] = " "
            i = e
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            for k in range(i + 1, min(j, n)):
                if out[k] != "\n":
                    out[k] = " "
            i = j + 1
            continue
        i += 1
    return "".join(out)


def match_close(m, pos):
    """Index of the bracket closing the one at m[pos] (masked text)."""
    pairs = {"(": ")", "{": "}", "[": "]"}
    opener = m[pos]
    closer = pairs[opener]
    depth = 0
    for i in range(pos, len(m)):
        if m[i] == opener:
            depth += 1
        elif m[i] == closer:
            depth -= 1
            if depth == 0:
                return i
    raise StripError("unbalanced %r at offset %d" % (opener, pos))


def match_open(m, pos):
    """Index of the bracket opening the one closed at m[pos]."""
    pairs = {")": "(", "}": "{", "]": "["}
    closer = m[pos]
    opener = pairs[closer]
    depth = 0
    for i in range(pos, -1, -1):
        if m[i] == closer:
            depth += 1
        elif m[i] == opener:
            depth -= 1
            if depth == 0:
                return i
    raise StripError("unbalanced %r at offset %d" % (closer, pos))


def depth_at(m, pos):
    """Brace depth at pos in masked text."""
    return m.count("{", 0, pos) - m.count("}", 0, pos)


def line_start(text, pos):
    return text.rfind("\n", 0, pos) + 1


def line_end(text, pos):
    """Index just past the newline ending the line that holds pos."""
    e = text.find("\n", pos)
    return len(text) if e < 0 else e + 1


def skip_ws(m, pos):
    while pos < len(m) and m[pos] in " \t\n":
        pos += 1
    return pos


def skip_ws_back(m, pos):
    """Last non-blank index strictly before pos (-1 if none)."""
    pos -= 1
    while pos >= 0 and m[pos] in " \t\n":
        pos -= 1
    return pos


def leading_comment_start(text, m, start):
    """Extend start upwards over the comment block(s) directly above it.

    Only comments that sit on lines of their own, right above `start` (no
    blank line between) are taken.
    """
    ls = line_start(text, start)
    while ls > 0:
        prev_ls = line_start(text, ls - 1)
        prev = text[prev_ls:ls]
        if prev.strip() == "":
            break
        if m[prev_ls:ls].strip() != "":
            break          # real code on that line
        if prev.lstrip().startswith("#"):
            break          # preprocessor line, not a comment
        ls = prev_ls
    return ls


def remove_span(text, start, end, with_comment=True):
    """Remove whole lines [start, end) and, optionally, the comment above.

    A blank line left doubled by the removal is collapsed.
    """
    m = mask(text)
    s = line_start(text, start)
    if with_comment:
        s = leading_comment_start(text, m, s)
    e = line_end(text, end - 1) if end > 0 else end
    before, after = text[:s], text[e:]
    if before.endswith("\n\n") and (after.startswith("\n") or after == ""):
        after = after[1:]
    elif before.endswith("\n\n") and after.lstrip(" \t").startswith("}"):
        before = before[:-1]
    return before + after


# --------------------------------------------------------------------------
# Definitions, keyed on names


def _decl_start(text, m, name_pos):
    """Start of the top-level declaration that contains name_pos."""
    i = name_pos - 1
    while i >= 0:
        if m[i] in ";}{":
            break
        if text[i] == "\n" and (m[i + 1:name_pos].strip() == "" and
                                text[i + 1:name_pos].strip() != "" and
                                text[i + 1:name_pos].lstrip().startswith(("#", "/*", "*", "//"))):
            break
        i -= 1
    start = i + 1
    # the declaration begins on the first line with code after that point
    while start < name_pos and m[start] in " \t\n":
        start += 1
    return start


def _export_after(text, end, name):
    """Span of an EXPORT_SYMBOL*(name); line following end, if any."""
    rest = text[end:]
    mo = re.match(r"\s*\n(EXPORT_SYMBOL(?:_GPL)?\(\s*%s\s*\);[ \t]*\n)" % re.escape(name), rest)
    if mo:
        return end + mo.end(1)
    return end


def drop_function(text, name, need=True):
    """Remove every top-level definition and prototype of function `name`."""
    found = False
    while True:
        m = mask(text)
        hit = None
        for mo in re.finditer(r"\b%s\s*\(" % re.escape(name), m):
            if depth_at(m, mo.start()) != 0:
                continue
            paren = mo.end() - 1
            close = match_close(m, paren)
            after = skip_ws(m, close + 1)
            # skip attributes/asm labels between ) and { or ;
            while after < len(m) and m[after] not in "{;=,)":
                after = skip_ws(m, after + 1)
            if after >= len(m) or m[after] not in "{;":
                continue
            # a call inside an initializer or macro would not be at depth 0
            start = _decl_start(text, m, mo.start())
            head = m[start:mo.start()]
            if re.search(r"[=(,]", head):
                continue
            end = match_close(m, after) + 1 if m[after] == "{" else after + 1
            if m[after] == "{":
                end = _export_after(text, end, name)
            hit = (start, end)
            break
        if not hit:
            break
        text = remove_span(text, hit[0], hit[1])
        found = True
    if need and not found:
        raise StripError("function %s not found" % name)
    return text


def drop_macro(text, name, need=True):
    """Remove `#define name ...` (with continuation lines)."""
    pat = re.compile(r"^[ \t]*#[ \t]*define[ \t]+%s\b.*?(?<!\\)\n" % re.escape(name),
                     re.M | re.S)
    found = False
    while True:
        mo = pat.search(text)
        if not mo:
            break
        text = remove_span(text, mo.start(), mo.end())
        found = True
    if need and not found:
        raise StripError("macro %s not found" % name)
    return text


def drop_term(text, name):
    """Remove `+ name` / `- name` terms of the expressions that use name."""
    new = re.sub(r"[ \t]*[-+][ \t]*%s\b" % re.escape(name), "", text)
    if new == text:
        raise StripError("no term %s found" % name)
    return new


def drop_type(text, kind, name, need=True):
    """Remove the definition `struct|enum name { ... };`."""
    m = mask(text)
    found = False
    for mo in re.finditer(r"\b%s\s+%s\s*\{" % (kind, re.escape(name)), m):
        if depth_at(m, mo.start()) != 0:
            continue
        close = match_close(m, mo.end() - 1)
        semi = skip_ws(m, close + 1)
        if m[semi] != ";":
            continue
        text = remove_span(text, mo.start(), semi + 1)
        found = True
        break
    if need and not found:
        raise StripError("%s %s not found" % (kind, name))
    return text


def drop_enum_member(text, name, need=True):
    """Remove enumerator `name`, handing an explicit value to its successor.

    `A = 1, B,` without A becomes `B = 1,`, so the numbering of the members
    that stay does not shift into a reserved value.
    """
    m = mask(text)
    mo = re.search(r"^([ \t]*)%s\b[ \t]*(=[^,\n]*)?,?[ \t]*\n" % re.escape(name), m, re.M)
    if not mo:
        if need:
            raise StripError("enum member %s not found" % name)
        return text
    value = mo.group(2)
    text = remove_span(text, mo.start(), mo.end(), with_comment=False)
    if value:
        m = mask(text)
        nxt = re.compile(r"^([ \t]*)(%s)[ \t]*," % IDENT, re.M).search(m, line_start(text, mo.start()))
        if nxt and "=" not in text[nxt.start():line_end(text, nxt.start())]:
            text = text[:nxt.end(2)] + " " + value.strip() + text[nxt.end(2):]
    return text


def drop_member(text, struct, member, need=True):
    """Remove field `member` (a data or function-pointer member) of struct."""
    m = mask(text)
    so = re.search(r"\bstruct\s+%s\s*\{" % re.escape(struct), m)
    if not so:
        if need:
            raise StripError("struct %s not found" % struct)
        return text
    body_end = match_close(m, so.end() - 1)
    pat = re.compile(r"^[^;{}]*?(?:\(\s*\*\s*%s\s*\)|\b%s\b)[^;{}]*;[ \t]*\n" %
                     (re.escape(member), re.escape(member)), re.M)
    mo = pat.search(m, so.end(), body_end)
    if not mo:
        if need:
            raise StripError("member %s.%s not found" % (struct, member))
        return text
    return remove_span(text, mo.start(), mo.end())


def drop_comment_paragraph(text, name, need=True):
    """Remove the paragraph of a block comment that documents `name`.

    Such a paragraph starts with ` * name:` or ` * @name:` and runs up to the
    next empty comment line or the next `NAME:` paragraph.
    """
    pat = re.compile(r"^[ \t]*\*[ \t]+@?%s:.*\n" % re.escape(name), re.M)
    mo = pat.search(text)
    if not mo:
        if need:
            raise StripError("comment paragraph %s not found" % name)
        return text
    end = mo.end()
    heading = mo.group(0).lstrip(" \t*").startswith("@")
    # kernel-doc @params end at a blank line; NAME: sections run to the next
    nxt = re.compile(r"^[ \t]*\*(?:[ \t]+@?[A-Z_a-z]\w*:|/)" +
                     (r"|^[ \t]*\*[ \t]*\n" if heading else ""), re.M)
    while not nxt.match(text, end) and end < len(text):
        end = line_end(text, end)
    start = mo.start()
    blank = re.compile(r"[ \t]*\*[ \t]*\n")
    if blank.match(text, end) and heading:
        end = blank.match(text, end).end()
    elif re.match(r"[ \t]*\*/", text[end:]):
        # last paragraph: drop the separator above it instead
        prev = line_start(text, start - 1)
        if blank.fullmatch(text[prev:start]):
            start = prev
    return text[:start] + text[end:]


def drop_case_labels(text, name):
    """Remove `case name:`; when a case body is left with no label, drop it."""
    while True:
        m = mask(text)
        mo = re.search(r"^[ \t]*case[ \t]+%s[ \t]*:[ \t]*\n" % re.escape(name), m, re.M)
        if not mo:
            return _drop_empty_switches(text)
        # the run of consecutive labels this one belongs to
        run_start = mo.start()
        run_end = mo.end()
        label = re.compile(r"[ \t]*(?:case[^:\n]*|default[ \t]*):[ \t]*\n")
        while True:
            prev_ls = line_start(text, run_start - 1) if run_start else 0
            if run_start and label.fullmatch(m[prev_ls:run_start]):
                run_start = prev_ls
            else:
                break
        while True:
            n2 = label.match(m, run_end)
            if not n2:
                break
            run_end = n2.end()
        labels = m[run_start:run_end]
        others = [ln for ln in labels.splitlines()
                  if ln.strip() and not re.match(r"\s*case\s+%s\s*:" % re.escape(name), ln)]
        if others:
            text = text[:mo.start()] + text[mo.end():]
            continue
        # the body runs to the next label at the same depth, or the switch end
        d = depth_at(m, run_end)
        pos = run_end
        body_end = None
        for lm in re.finditer(r"^[ \t]*(?:case\b[^:\n]*|default[ \t]*):", m[run_end:], re.M):
            p = run_end + lm.start()
            if depth_at(m, p) == d:
                body_end = p
                break
        if body_end is None:
            body_end = m.index("}", pos)
            body_end = line_start(text, body_end)
        text = text[:run_start] + text[body_end:]


def _drop_empty_switches(text):
    """Remove a `switch (x) { default: break; }` that has nothing left."""
    m = mask(text)
    for mo in re.finditer(r"\bswitch\s*\(", m):
        close = match_close(m, mo.end() - 1)
        body = skip_ws(m, close + 1)
        if m[body] != "{":
            continue
        end = match_close(m, body)
        if re.fullmatch(r"\s*default\s*:\s*break\s*;\s*", m[body + 1:end]):
            return _drop_empty_switches(remove_span(text, mo.start(), end + 1))
    return text


# --------------------------------------------------------------------------
# Constant folding


def replace_calls(text, name, sentinel):
    """Replace every call `name(...)` outside comments by sentinel."""
    while True:
        m = mask(text)
        mo = re.search(r"\b%s\s*\(" % re.escape(name), m)
        if not mo:
            return text
        close = match_close(m, mo.end() - 1)
        text = text[:mo.start()] + sentinel + text[close + 1:]


def replace_comparisons(text, name):
    """`x == name` becomes FALSE and `x != name` TRUE (x a member chain)."""
    chain = r"[A-Za-z_][\w]*(?:(?:->|\.)[A-Za-z_]\w*)*"
    text = re.sub(r"%s\s*==\s*%s\b" % (chain, re.escape(name)), FALSE, text)
    text = re.sub(r"%s\s*!=\s*%s\b" % (chain, re.escape(name)), TRUE, text)
    return text


def _split_top(expr, op):
    """Split expr at top-level occurrences of op ('||' or '&&')."""
    parts, depth, last, i = [], 0, 0, 0
    while i < len(expr):
        c = expr[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and expr.startswith(op, i):
            parts.append(expr[last:i])
            i += len(op)
            last = i
            continue
        i += 1
    parts.append(expr[last:])
    return parts


def _has_top(expr, chars):
    """Whether expr has one of chars outside any bracket."""
    depth = 0
    for i, c in enumerate(expr):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and c in chars:
            return True
    return False


def fold(expr):
    """Fold sentinels in a C boolean expression.

    Returns the folded text; atoms that hold no sentinel are kept verbatim.
    Only ||, &&, !, grouping parentheses and likely()/unlikely() are
    interpreted; anything else that contains a sentinel is left as it is.
    """
    if not SENTINEL_RE.search(expr):
        return expr
    lead = expr[:len(expr) - len(expr.lstrip())]
    trail = expr[len(expr.rstrip()):]
    core = expr.strip()
    if _has_top(core, "?:") and not (core.startswith("(") and match_close(core, 0) == len(core) - 1):
        return expr
    ors = _split_top(core, "||")
    if len(ors) > 1:
        kept = []
        for p in ors:
            f = fold(p).strip()
            if f == TRUE:
                return lead + TRUE + trail
            if f != FALSE:
                kept.append(f)
        if not kept:
            return lead + FALSE + trail
        return lead + _join(kept, "||", ors) + trail
    ands = _split_top(core, "&&")
    if len(ands) > 1:
        kept = []
        for p in ands:
            f = fold(p).strip()
            if f == FALSE:
                return lead + FALSE + trail
            if f != TRUE:
                kept.append(f)
        if not kept:
            return lead + TRUE + trail
        return lead + _join(kept, "&&", ands) + trail
    if core.startswith("!"):
        inner = fold(core[1:]).strip()
        if inner == FALSE:
            return lead + TRUE + trail
        if inner == TRUE:
            return lead + FALSE + trail
        return lead + "!" + inner + trail
    mo = re.match(r"(likely|unlikely)?\s*\(", core)
    if mo and match_close(core, mo.end() - 1) == len(core) - 1:
        inner = fold(core[mo.end():-1]).strip()
        if inner in (TRUE, FALSE):
            return lead + inner + trail
        return lead + core[:mo.end()] + inner + ")" + trail
    return expr


def _join(parts, op, original):
    """Join folded operands; keep a line break style when the original had one."""
    multiline = any("\n" in p for p in original)
    if not multiline:
        return (" %s " % op).join(parts)
    out = parts[0]
    for p in parts[1:]:
        out += " %s\n%s" % (op, _indent_of(original, p)) + p
    return out


def _indent_of(original, part):
    # reuse the indentation of the second operand's line in the original
    for p in original[1:]:
        if p.startswith("\n") or p.lstrip(" ").startswith("\n"):
            lines = p.split("\n")
            if len(lines) > 1:
                return lines[1][:len(lines[1]) - len(lines[1].lstrip())]
    return "\t"


def _stmt_extent(m, pos):
    """End (exclusive) of the statement starting at pos (masked text)."""
    pos = skip_ws(m, pos)
    if m[pos] == "{":
        return match_close(m, pos) + 1
    mo = re.match(r"(if|while|for|switch)\s*\(", m[pos:])
    if mo:
        close = match_close(m, pos + mo.end() - 1)
        end = _stmt_extent(m, close + 1)
        if mo.group(1) == "if":
            nxt = skip_ws(m, end)
            if m.startswith("else", nxt) and not re.match(r"\w", m[nxt + 4:nxt + 5]):
                end = _stmt_extent(m, nxt + 4)
        return end
    if m.startswith("do", pos) and not re.match(r"\w", m[pos + 2:pos + 3]):
        body = _stmt_extent(m, pos + 2)
        return m.index(";", body) + 1
    depth = 0
    i = pos
    while i < len(m):
        c = m[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == ";" and depth == 0:
            return i + 1
        i += 1
    raise StripError("statement at %d has no end" % pos)


def _unwrap(text, start, end):
    """The statement text[start:end] without its braces, outdented a level."""
    body = text[start:end]
    s = body.strip()
    if s.startswith("{") and s.endswith("}"):
        inner = s[1:-1].strip("\n")
        lines = [ln[1:] if ln.startswith("\t") else ln for ln in inner.split("\n")]
        lines = [ln.rstrip() for ln in lines]
        return "\n".join(lines).strip("\n")
    # single statement on its own line(s): outdent by one tab
    lines = body.strip("\n").split("\n")
    lines = [ln[1:] if ln.startswith("\t") else ln for ln in lines]
    return "\n".join(lines).strip()


def _fold_if(text, m, kw_start, cond_open, cond_close, value):
    """Rewrite an if statement whose condition is the constant `value`."""
    then_end = _stmt_extent(m, cond_close + 1)
    then_start = skip_ws(m, cond_close + 1)
    else_kw = skip_ws(m, then_end)
    has_else = m.startswith("else", else_kw) and not re.match(r"\w", m[else_kw + 4:else_kw + 5])
    else_start = else_end = None
    if has_else:
        else_start = skip_ws(m, else_kw + 4)
        else_end = _stmt_extent(m, else_kw + 4)
    prev = skip_ws_back(m, kw_start)
    is_else_if = prev >= 3 and m[prev - 3:prev + 1] == "else"
    indent_ls = line_start(text, kw_start)
    indent = re.match(r"[ \t]*", text[indent_ls:]).group(0)

    if value == TRUE:
        keep = (then_start, then_end)
    else:
        keep = (else_start, else_end) if has_else else None
    stmt_end = else_end if has_else else then_end

    if is_else_if:
        # `else if (c) A [else B]`: the `else` belongs to an outer if
        if keep is None:
            else_pos = prev - 3
            cut_from = skip_ws_back(m, else_pos) + 1
            return text[:cut_from] + text[stmt_end:]
        # `else` followed by the kept branch exactly as it was written
        intro = cond_close + 1 if value == TRUE else else_kw + 4
        return text[:prev - 3] + "else" + text[intro:keep[1]] + text[stmt_end:]

    if keep is None:
        return remove_span(text, kw_start, stmt_end)
    if m[keep[0]] != "{" and "\n" not in text[skip_ws_back(m, keep[0]) + 1:keep[0]]:
        # `else if ...` kept whole: it already sits at the if's own level
        return text[:kw_start] + text[keep[0]:keep[1]] + text[stmt_end:]
    body = _unwrap(text, keep[0], keep[1])
    lines = body.split("\n")
    body = "\n".join((indent + ln.lstrip("\t") if i == 0 else ln) if ln else ln
                     for i, ln in enumerate(lines))
    return text[:indent_ls] + body + text[line_end(text, stmt_end - 1) - 1:]


def fold_all(text):
    """Fold every sentinel in text until none can be folded further."""
    for _ in range(10000):
        m = mask(text)
        mo = SENTINEL_RE.search(m) or SENTINEL_RE.search(text)
        if not mo:
            return text
        changed = _fold_one(text, mask_keep_sentinels(text), mo.start())
        if changed is None:
            # cannot be folded further: make it a plain C constant
            s = mo.group(0)
            text = text[:mo.start()] + ("false" if s == FALSE else "true") + text[mo.end():]
        else:
            text = changed
    raise StripError("folding did not converge")


def mask_keep_sentinels(text):
    return mask(text)


def _fold_one(text, m, pos):
    """Fold the innermost expression around the sentinel at pos.

    Returns the new text, or None when the sentinel sits where folding stops.
    """
    # innermost enclosing parenthesis
    depth = 0
    i = pos - 1
    open_pos = None
    while i >= 0:
        c = m[i]
        if c in ")]":
            depth += 1
        elif c in "([":
            if depth == 0:
                open_pos = i if c == "(" else None
                break
            depth -= 1
        elif c in "{};" and depth == 0:
            break
        i -= 1
    if open_pos is not None:
        close = match_close(m, open_pos)
        inner = text[open_pos + 1:close]
        if _has_top(inner, ","):
            # a call's argument list: fold the one argument that holds it
            off = open_pos + 1
            for arg in _split_top(inner, ","):
                if off <= pos < off + len(arg):
                    folded = fold(arg)
                    if folded == arg:
                        return None
                    return text[:off] + folded + text[off + len(arg):]
                off += len(arg) + 1
            return None
        folded = fold(inner)
        if folded != inner:
            return text[:open_pos + 1] + folded + text[close:]
        s = folded.strip()
        if s not in (TRUE, FALSE):
            return None
        head = m[:open_pos].rstrip()
        kw = re.search(r"(\w+)$", head)
        word = kw.group(1) if kw else ""
        if word == "if":
            return _fold_if(text, m, len(head) - 2, open_pos, close, s)
        if word in ("likely", "unlikely"):
            return text[:len(head) - len(word)] + s + text[close + 1:]
        if word == "" and head and head[-1] in "(!&|=?:,":
            return text[:open_pos] + s + text[close + 1:]
        if word == "return":
            return text[:open_pos] + s + text[close + 1:]
        return None
    # a statement: an initializer, assignment or return value
    stmt_start = i + 1
    semi = m.find(";", pos)
    stmt = text[stmt_start:semi]
    mo = re.match(r"(\s*(?:return\b|[^;=!<>]*[^=!<>]=(?!=)))(.*)$", stmt, re.S)
    if not mo:
        return None
    folded = fold(mo.group(2))
    if folded != mo.group(2):
        return text[:stmt_start] + mo.group(1) + folded + text[semi:]
    cm = re.match(r"\s*const\s+bool\s+(%s)\s*=\s*(__STRIP_(?:FALSE|TRUE)__)\s*$" % IDENT, stmt)
    if cm:
        return _propagate_const(text, skip_ws(m, stmt_start), semi + 1,
                                cm.group(1), cm.group(2))
    return None


def functions(text):
    """[(name, body_open, body_close)] of the top-level function definitions."""
    m = mask(text)
    spans = []
    i = 0
    while True:
        i = m.find("{", i)
        if i < 0:
            return spans
        close = match_close(m, i)
        if depth_at(m, i) == 0:
            prev = skip_ws_back(m, i)
            if prev >= 0 and m[prev] == ")":
                name = re.search(r"(%s)\s*$" % IDENT, m[:match_open(m, prev)])
                if name:
                    spans.append((name.group(1), i, close))
        i = close + 1


def functions_with_sentinels(text):
    return {name for name, o, c in functions(text) if SENTINEL_RE.search(text, o, c)}


DECL_RE = re.compile(r"^[ \t]+(?:(?:const|struct|union|enum|unsigned|signed|volatile)\s+)*"
                     r"(%s)(?:\s+|\s*\*+\s*)(%s);[ \t]*\n" % (IDENT, IDENT), re.M)
KEYWORDS = {"return", "goto", "break", "continue", "case", "default", "else", "do"}


def drop_unused_locals(text, names):
    """In the functions named, drop plain declarations nothing uses any more."""
    for name, o, c in reversed(functions(text)):
        if name not in names:
            continue
        m = mask(text)
        for mo in reversed(list(DECL_RE.finditer(m, o, c))):
            if mo.group(1) in KEYWORDS:
                continue
            var = mo.group(2)
            rest = m[o:mo.start()] + m[mo.end():c]
            if not re.search(r"\b%s\b" % var, rest):
                text = text[:mo.start()] + text[mo.end():]
                m = mask(text)
                c -= mo.end() - mo.start()
    return text


def _propagate_const(text, start, end, name, value):
    """Drop `const bool name = CONST;` and use CONST for name in its block."""
    m = mask(text)
    # the end of the enclosing block
    depth = 0
    block_end = len(text)
    for i in range(end, len(m)):
        if m[i] == "{":
            depth += 1
        elif m[i] == "}":
            if depth == 0:
                block_end = i
                break
            depth -= 1
    body = re.sub(r"\b%s\b" % name, value, text[end:block_end])
    text = text[:end] + body + text[block_end:]
    return remove_span(text, start, end, with_comment=False)
