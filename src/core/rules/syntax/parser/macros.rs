//! The macros `all`, `exists`, `exists_one`/`existsOne`, `map` and `filter` expanded into
//! comprehensions over `@result`, node for node and id for id as cel-parser 0.10.1 does.

use cel_parser::ast::{operators as op, ComprehensionExpr, Expr, IdedExpr, ListExpr};
use cel_parser::reference::Val;

use super::{call, Parsed, Parser};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Macro {
    All,
    Exists,
    ExistsOne,
    Map,
    Filter,
}

impl Parser<'_> {
    fn ident(&mut self, name: &str) -> IdedExpr {
        self.node(Expr::Ident(name.to_string()))
    }

    fn lit(&mut self, val: Val) -> IdedExpr {
        self.node(Expr::Literal(val))
    }

    fn empty_list(&mut self) -> IdedExpr {
        self.node(Expr::List(ListExpr::default()))
    }

    /// `target.m(x, …)` as a comprehension, creating nodes in cel-parser's order.
    pub(super) fn expand(
        &mut self,
        kind: Macro,
        target: IdedExpr,
        mut args: Vec<IdedExpr>,
    ) -> Parsed {
        const ACC: &str = "@result";
        let var_expr = if args.is_empty() {
            None
        } else {
            Some(args.remove(0))
        };
        let (iter_var, var_expr) = match var_expr {
            Some(IdedExpr {
                expr: Expr::Ident(name),
                id,
            }) => (
                name.clone(),
                IdedExpr {
                    id,
                    expr: Expr::Ident(name),
                },
            ),
            _ => return self.err("argument must be a simple name"),
        };
        let last = args
            .pop()
            .ok_or_else(|| "missing macro argument".to_string())?;
        let (init, cond, step, result) = match kind {
            Macro::All | Macro::Exists => {
                let all = kind == Macro::All;
                let init = self.lit(Val::Boolean(all));
                let acc = self.ident(ACC);
                let cond_arg = if all {
                    acc
                } else {
                    let id = self.id();
                    call(id, op::LOGICAL_NOT, None, vec![acc])
                };
                let id = self.id();
                let cond = call(id, op::NOT_STRICTLY_FALSE, None, vec![cond_arg]);
                let acc = self.ident(ACC);
                let id = self.id();
                let func = if all { op::LOGICAL_AND } else { op::LOGICAL_OR };
                let step = call(id, func, None, vec![acc, last]);
                (init, cond, step, self.ident(ACC))
            }
            Macro::ExistsOne => {
                let init = self.lit(Val::Int(0));
                let cond = self.lit(Val::Boolean(true));
                let acc = self.ident(ACC);
                let one = self.lit(Val::Int(1));
                let id = self.id();
                let plus = call(id, op::ADD, None, vec![acc, one]);
                let acc = self.ident(ACC);
                let id = self.id();
                let step = call(id, op::CONDITIONAL, None, vec![last, plus, acc]);
                let acc = self.ident(ACC);
                let one = self.lit(Val::Int(1));
                let id = self.id();
                (init, cond, step, call(id, op::EQUALS, None, vec![acc, one]))
            }
            Macro::Map | Macro::Filter => {
                let init = self.empty_list();
                let cond = self.lit(Val::Boolean(true));
                let (element, filter) = if kind == Macro::Filter {
                    (var_expr, Some(last))
                } else {
                    (last, args.pop())
                };
                let acc = self.ident(ACC);
                let one = self.node(Expr::List(ListExpr {
                    elements: vec![element],
                }));
                let id = self.id();
                let mut step = call(id, op::ADD, None, vec![acc, one]);
                if let Some(filter) = filter {
                    let acc = self.ident(ACC);
                    let id = self.id();
                    step = call(id, op::CONDITIONAL, None, vec![filter, step, acc]);
                }
                (init, cond, step, self.ident(ACC))
            }
        };
        Ok(self.node(Expr::Comprehension(ComprehensionExpr {
            iter_range: Box::new(target),
            iter_var,
            iter_var2: None,
            accu_var: ACC.to_string(),
            accu_init: Box::new(init),
            loop_cond: Box::new(cond),
            loop_step: Box::new(step),
            result: Box::new(result),
        })))
    }
}
