//! What Ollama reads from and does to a template's parse tree: identifiers (`Vars`), the
//! parse-time checks of Go's parser, the appended `{{ .Response }}`, the legacy cut after
//! `.Response`, the tool-call tag and the thinking tags, plus the rewrite that routes printed
//! values through Go-style printing.

use gotmpl::parse::{
    ActionNode, BranchNode, CommandNode, Expr, ListNode, Node, PipeNode, Pos, SmolStr,
};

/// The function appended to every printing action: prints a value as Go's `fmt` would.
pub(crate) const PRINT_FN: &str = "__ollamars_print";
/// The function wrapped around arguments of `print`, `printf`… : applies `String()` methods.
pub(crate) const ARG_FN: &str = "__ollamars_arg";

/// Go's built-in template functions.
pub(crate) const BUILTIN_FUNCS: [&str; 19] = [
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
];

/// The functions Ollama's `Parse` registers.
pub(crate) const OLLAMA_FUNCS: [&str; 4] =
    ["json", "currentDate", "yesterdayDate", "toTypeScriptType"];

/// Built-ins that format their arguments with `fmt`, so `String()` methods apply.
const PRINTERS: [&str; 6] = ["print", "printf", "println", "html", "js", "urlquery"];

// ---------------------------------------------------------------------------------------------
// Identifiers (Ollama's `template.Identifiers`)

/// Collects the identifiers Ollama's `Identifiers` finds: the names of field nodes (`.A.B` gives
/// `A`, `B`) and variable nodes (`$x.A` gives `$x`, `A`), in pipelines of actions, branches and
/// template calls. Fails, as Ollama does, on a `{{template}}` call without a pipeline.
pub(crate) fn identifiers(list: &ListNode, out: &mut Vec<String>) -> Result<(), &'static str> {
    for node in &list.nodes {
        identifiers_node(node, out)?;
    }
    Ok(())
}

fn identifiers_node(node: &Node, out: &mut Vec<String>) -> Result<(), &'static str> {
    match node {
        Node::List(list) => identifiers(list, out),
        Node::Template(t) => match &t.pipe {
            Some(pipe) => {
                identifiers_pipe(pipe, out);
                Ok(())
            }
            None => Err("undefined template specified"),
        },
        Node::Action(a) => {
            identifiers_pipe(&a.pipe, out);
            Ok(())
        }
        Node::If(b) | Node::Range(b) | Node::With(b) => {
            identifiers_pipe(&b.pipe, out);
            identifiers(&b.body, out)?;
            if let Some(else_body) = &b.else_body {
                identifiers(else_body, out)?;
            }
            Ok(())
        }
        Node::Define(d) => identifiers(&d.body, out),
        Node::Text(_) | Node::Break(_) | Node::Continue(_) => Ok(()),
    }
}

fn identifiers_pipe(pipe: &PipeNode, out: &mut Vec<String>) {
    for command in &pipe.commands {
        for arg in &command.args {
            match arg {
                Expr::Field(_, idents) => out.extend(idents.iter().map(|i| i.to_string())),
                Expr::Variable(_, name, idents) => {
                    out.push(name.to_string());
                    out.extend(idents.iter().map(|i| i.to_string()));
                }
                Expr::Pipe(_, inner) => identifiers_pipe(inner, out),
                _ => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parse-time checks that Go's parser makes and gotmpl leaves to execution

/// Go's parser rejects calls of unknown functions and uses of undeclared variables.
pub(crate) struct Checker {
    vars: Vec<SmolStr>,
}

/// A parse error: line and message.
pub(crate) type CheckError = (usize, String);

impl Checker {
    /// Checks one template body (variables start as just `$`).
    pub(crate) fn check(list: &ListNode) -> Result<(), CheckError> {
        let mut checker = Checker {
            vars: vec![SmolStr::new_static("$")],
        };
        checker.list(list)
    }

    fn list(&mut self, list: &ListNode) -> Result<(), CheckError> {
        for node in &list.nodes {
            match node {
                Node::List(inner) => self.list(inner)?,
                Node::Action(a) => self.pipe(&a.pipe)?,
                Node::If(b) | Node::Range(b) | Node::With(b) => {
                    // Variables declared in the control's pipeline or bodies end with it.
                    let mark = self.vars.len();
                    self.pipe(&b.pipe)?;
                    self.list(&b.body)?;
                    if let Some(else_body) = &b.else_body {
                        self.list(else_body)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Template(t) => {
                    if let Some(pipe) = &t.pipe {
                        self.pipe(pipe)?;
                    }
                }
                Node::Define(d) => Checker::check(&d.body)?,
                Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
            }
        }
        Ok(())
    }

    fn pipe(&mut self, pipe: &PipeNode) -> Result<(), CheckError> {
        // Go declares the variables before it parses the commands.
        self.vars.extend(pipe.decl.iter().cloned());
        for command in &pipe.commands {
            for arg in &command.args {
                self.expr(arg)?;
            }
        }
        Ok(())
    }

    fn expr(&mut self, expr: &Expr) -> Result<(), CheckError> {
        match expr {
            Expr::Identifier(pos, name)
                if !BUILTIN_FUNCS.contains(&name.as_str())
                    && !OLLAMA_FUNCS.contains(&name.as_str()) =>
            {
                return Err((
                    pos.line,
                    format!("function {:?} not defined", name.as_str()),
                ));
            }
            Expr::Variable(pos, name, _) if !self.vars.iter().any(|v| v == name) => {
                return Err((pos.line, format!("undefined variable {:?}", name.as_str())));
            }
            Expr::Pipe(_, pipe) => {
                // A parenthesised pipeline may declare too; its variables stay in scope.
                self.pipe(pipe)?;
            }
            Expr::Chain(_, inner, _) => self.expr(inner)?,
            _ => {}
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The appended `{{ .Response }}` and the legacy cut

/// The `{{ .Response }}` action Ollama appends to templates that mention neither `.Messages` nor
/// `.Response`.
pub(crate) fn response_action(pos: Pos) -> Node {
    let field = Expr::Field(pos, vec![SmolStr::new_static("Response")]);
    Node::Action(ActionNode {
        pos,
        pipe: PipeNode {
            pos,
            decl: Vec::new(),
            commands: vec![CommandNode {
                pos,
                args: vec![field],
            }],
            is_assign: false,
        },
    })
}

/// A copy of `list` with everything after the first `.Response` field removed, as Ollama's
/// `deleteNode` does for the last turn of a legacy conversation.
///
/// Walking in order, the first field node that names `Response` is kept and switches cutting on;
/// from then on every node reached is dropped. A command left without arguments drops its whole
/// pipeline (and so its action). Branch conditions are not inspected. Where Ollama would crash
/// (an `{{else}}` after a cut inside the `if` body) the else branch is dropped.
pub(crate) fn cut_after_response(list: &ListNode) -> ListNode {
    Cutter { cut: false }.list(list)
}

struct Cutter {
    cut: bool,
}

impl Cutter {
    fn list(&mut self, list: &ListNode) -> ListNode {
        ListNode {
            pos: list.pos,
            nodes: list.nodes.iter().filter_map(|n| self.node(n)).collect(),
        }
    }

    fn node(&mut self, node: &Node) -> Option<Node> {
        if self.cut {
            return None;
        }
        Some(match node {
            Node::List(list) => Node::List(self.list(list)),
            Node::If(b) => Node::If(self.branch(b)),
            Node::Range(b) => Node::Range(self.branch(b)),
            Node::With(b) => Node::With(self.branch(b)),
            Node::Action(a) => Node::Action(ActionNode {
                pos: a.pos,
                pipe: self.pipe(&a.pipe)?,
            }),
            other => other.clone(),
        })
    }

    fn branch(&mut self, b: &BranchNode) -> BranchNode {
        let body = self.list(&b.body);
        let else_body = match &b.else_body {
            Some(else_body) if !self.cut => Some(self.list(else_body)),
            _ => None,
        };
        BranchNode {
            pos: b.pos,
            pipe: b.pipe.clone(),
            body,
            else_body,
        }
    }

    fn pipe(&mut self, pipe: &PipeNode) -> Option<PipeNode> {
        if self.cut {
            return None;
        }
        let mut commands = Vec::with_capacity(pipe.commands.len());
        for command in &pipe.commands {
            let args: Vec<Expr> = command.args.iter().filter_map(|a| self.expr(a)).collect();
            if args.is_empty() {
                return None;
            }
            commands.push(CommandNode {
                pos: command.pos,
                args,
            });
        }
        if commands.is_empty() {
            return None;
        }
        Some(PipeNode {
            pos: pipe.pos,
            decl: pipe.decl.clone(),
            commands,
            is_assign: pipe.is_assign,
        })
    }

    fn expr(&mut self, expr: &Expr) -> Option<Expr> {
        if let Expr::Field(_, idents) = expr
            && idents.iter().any(|i| i == "Response")
        {
            self.cut = true;
            return Some(expr.clone());
        }
        if self.cut {
            return None;
        }
        match expr {
            Expr::Pipe(pos, pipe) => self.pipe(pipe).map(|p| Expr::Pipe(*pos, p)),
            other => Some(other.clone()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The printing rewrite

/// Routes printed values through [`PRINT_FN`] and arguments of the `fmt`-based built-ins through
/// [`ARG_FN`], so they print as Go prints Ollama's typed values.
pub(crate) fn rewrite_for_printing(list: &mut ListNode) {
    for node in &mut list.nodes {
        match node {
            Node::List(inner) => rewrite_for_printing(inner),
            Node::Action(a) => {
                rewrite_pipe(&mut a.pipe);
                if a.pipe.decl.is_empty() {
                    a.pipe.commands.push(call(PRINT_FN, a.pipe.pos));
                }
            }
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                rewrite_pipe(&mut b.pipe);
                rewrite_for_printing(&mut b.body);
                if let Some(else_body) = &mut b.else_body {
                    rewrite_for_printing(else_body);
                }
            }
            Node::Template(t) => {
                if let Some(pipe) = &mut t.pipe {
                    rewrite_pipe(pipe);
                }
            }
            Node::Define(d) => rewrite_for_printing(&mut d.body),
            Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
        }
    }
}

/// A command calling `name` with no explicit arguments (it takes the piped value).
fn call(name: &'static str, pos: Pos) -> CommandNode {
    CommandNode {
        pos,
        args: vec![Expr::Identifier(pos, SmolStr::new_static(name))],
    }
}

fn rewrite_pipe(pipe: &mut PipeNode) {
    let old = std::mem::take(&mut pipe.commands);
    let mut commands = Vec::with_capacity(old.len() + 1);
    for (i, mut command) in old.into_iter().enumerate() {
        for arg in &mut command.args {
            rewrite_expr(arg);
        }
        let printer = matches!(command.args.first(),
            Some(Expr::Identifier(_, name)) if PRINTERS.contains(&name.as_str()));
        if printer {
            for arg in command.args.iter_mut().skip(1) {
                wrap_arg(arg);
            }
            if i > 0 {
                commands.push(call(ARG_FN, command.pos));
            }
        }
        commands.push(command);
    }
    pipe.commands = commands;
}

fn rewrite_expr(expr: &mut Expr) {
    match expr {
        Expr::Pipe(_, pipe) => rewrite_pipe(pipe),
        Expr::Chain(_, inner, _) => rewrite_expr(inner),
        _ => {}
    }
}

/// Replaces `arg` with `(ARG_FN arg)`.
fn wrap_arg(arg: &mut Expr) {
    let pos = arg.pos();
    let inner = std::mem::replace(arg, Expr::Nil(pos));
    *arg = Expr::Pipe(
        pos,
        PipeNode {
            pos,
            decl: Vec::new(),
            commands: vec![CommandNode {
                pos,
                args: vec![Expr::Identifier(pos, SmolStr::new_static(ARG_FN)), inner],
            }],
            is_assign: false,
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Tool-call tag (Ollama's `tools.parseTag`)

/// The text that opens a tool call: the first non-blank text inside the first `if` whose
/// pipeline names `.ToolCalls`, cut before `{` and trimmed (`{` if that leaves nothing).
/// `None` when the template has no such `if`.
pub(crate) fn tool_call_tag(list: &ListNode) -> Option<String> {
    let block = find_tool_calls_if(&list.nodes)?;
    let Some(text) = find_text(&block.body.nodes) else {
        return Some("{".to_string());
    };
    let text = text.replace("\r\n", "\n");
    let before = text.split('{').next().unwrap_or_default().trim();
    Some(if before.is_empty() { "{" } else { before }.to_string())
}

fn is_tool_calls_if(b: &BranchNode) -> bool {
    b.pipe.commands.iter().any(|c| {
        c.args
            .iter()
            .any(|a| matches!(a, Expr::Field(_, idents) if idents.iter().any(|i| i == "ToolCalls")))
    })
}

fn find_tool_calls_if(nodes: &[Node]) -> Option<&BranchNode> {
    for node in nodes {
        let found = match node {
            Node::If(b) if is_tool_calls_if(b) => return Some(b),
            Node::If(b) | Node::Range(b) | Node::With(b) => find_tool_calls_if(&b.body.nodes)
                .or_else(|| {
                    b.else_body
                        .as_ref()
                        .and_then(|e| find_tool_calls_if(&e.nodes))
                }),
            Node::List(list) => find_tool_calls_if(&list.nodes),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The first non-blank text, depth first, stopping at the first action or at the end of the
/// first nested block.
fn find_text(nodes: &[Node]) -> Option<&str> {
    for node in nodes {
        match node {
            Node::Text(t) if t.text.trim().is_empty() => {}
            Node::Text(t) => return Some(&t.text),
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                return find_text(&b.body.nodes)
                    .or_else(|| b.else_body.as_ref().and_then(|e| find_text(&e.nodes)));
            }
            Node::List(list) => {
                if let Some(text) = find_text(&list.nodes) {
                    return Some(text);
                }
            }
            Node::Action(_) => return None,
            _ => {}
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Thinking tags (Ollama's `thinking.InferTags`)

/// The opening and closing thinking tags: for each `.Thinking` field inside a `range` over
/// `.Messages`, the first and last nodes of the nearest enclosing list, when they are text
/// (trimmed). The last such field wins; either tag may stay empty.
pub(crate) fn thinking_tags(list: &ListNode) -> (String, String) {
    let mut infer = InferTags {
        ancestors: Vec::new(),
        open: String::new(),
        close: String::new(),
    };
    infer.list(list);
    (infer.open, infer.close)
}

#[derive(Clone, Copy)]
enum Ancestor<'a> {
    List(&'a ListNode),
    Range(&'a BranchNode),
}

struct InferTags<'a> {
    ancestors: Vec<Ancestor<'a>>,
    open: String,
    close: String,
}

impl<'a> InferTags<'a> {
    fn list(&mut self, list: &'a ListNode) {
        self.ancestors.push(Ancestor::List(list));
        for node in &list.nodes {
            self.node(node);
        }
        self.ancestors.pop();
    }

    fn node(&mut self, node: &'a Node) {
        match node {
            Node::List(list) => self.list(list),
            Node::If(b) | Node::With(b) => self.branch(b),
            Node::Range(b) => {
                self.ancestors.push(Ancestor::Range(b));
                self.branch(b);
                self.ancestors.pop();
            }
            Node::Action(a) => self.pipe(&a.pipe),
            Node::Template(t) => {
                if let Some(pipe) = &t.pipe {
                    self.pipe(pipe);
                }
            }
            _ => {}
        }
    }

    fn branch(&mut self, b: &'a BranchNode) {
        self.pipe(&b.pipe);
        self.list(&b.body);
        if let Some(else_body) = &b.else_body {
            self.list(else_body);
        }
    }

    fn pipe(&mut self, pipe: &'a PipeNode) {
        for command in &pipe.commands {
            for arg in &command.args {
                match arg {
                    Expr::Field(_, idents) if idents.first().is_some_and(|i| i == "Thinking") => {
                        self.thinking_field();
                    }
                    Expr::Pipe(_, inner) => self.pipe(inner),
                    _ => {}
                }
            }
        }
    }

    fn thinking_field(&mut self) {
        let range = self.ancestors.iter().rev().find_map(|a| match a {
            Ancestor::Range(r) => Some(*r),
            Ancestor::List(_) => None,
        });
        if !range.is_some_and(|r| pipe_uses_field(&r.pipe, "Messages")) {
            return;
        }
        let list = self.ancestors.iter().rev().find_map(|a| match a {
            Ancestor::List(l) => Some(*l),
            Ancestor::Range(_) => None,
        });
        if let Some(list) = list {
            if let Some(Node::Text(t)) = list.nodes.first() {
                self.open = t.text.trim().to_string();
            }
            if let Some(Node::Text(t)) = list.nodes.last() {
                self.close = t.text.trim().to_string();
            }
        }
    }
}

/// Whether a field node whose first name is `field` appears in `pipe`.
fn pipe_uses_field(pipe: &PipeNode, field: &str) -> bool {
    pipe.commands.iter().any(|c| {
        c.args.iter().any(|a| match a {
            Expr::Field(_, idents) => idents.first().is_some_and(|i| i == field),
            Expr::Pipe(_, inner) => pipe_uses_field(inner, field),
            _ => false,
        })
    })
}
