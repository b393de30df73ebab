//! Draws the model: top bar (connection), tree (only the rows on screen), node pane,
//! status line, key footer, and the dialog of the moment.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::data;
use super::model::{App, Conn, Input, Mark, Mode};
use crate::util::now_millis;

/// The keys, as `?` lists them.
pub const HELP: &[(&str, &str)] = &[
    ("↑ ↓  j k", "move"),
    ("PgUp PgDn Home End", "move by page, to the top or bottom"),
    ("→ l Enter", "open a node (lists its children)"),
    ("← h", "close a node, or go to its parent"),
    ("J K", "scroll the node pane"),
    ("g", "go to a path"),
    ("/", "filter the current list by a substring (empty: all)"),
    ("r", "refresh the selected node and its list"),
    ("y", "copy the selected path (OSC 52 clipboard)"),
    ("c", "create a child: persistent, sequential, container or TTL"),
    ("e", "edit the data in $EDITOR (compare-and-set)"),
    ("d Del", "delete the node, or its subtree (counted first)"),
    ("?", "this help"),
    ("q Ctrl-C", "quit"),
];

pub fn render(f: &mut Frame, app: &mut App) {
    let [top, main, status, footer] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(3), Constraint::Length(1), Constraint::Length(1)])
            .areas(f.area());
    let [left, right] = Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(main);
    app.height = left.height.saturating_sub(2) as usize;
    app.fix_scroll();
    top_bar(f, app, top);
    tree(f, app, left);
    node_pane(f, app, right);
    if let Some(s) = &app.status {
        let style = if s.error { Style::new().fg(Color::Red) } else { Style::new().fg(Color::Cyan) };
        f.render_widget(Paragraph::new(Span::styled(s.text.clone(), style)), status);
    }
    f.render_widget(Paragraph::new(footer_keys(app)).style(Style::new().add_modifier(Modifier::REVERSED)), footer);
    dialog(f, app);
}

fn top_bar(f: &mut Frame, app: &App, area: Rect) {
    let (text, color) = match app.conn {
        Conn::Connecting => ("connecting…".to_string(), Color::Yellow),
        Conn::Connected { session, renewed: false } => (format!("● connected, session {session:#x}"), Color::Green),
        Conn::Connected { session, renewed: true } => (format!("● connected, new session {session:#x}"), Color::Green),
        Conn::Reconnecting { .. } => ("◌ disconnected: reconnecting…".to_string(), Color::Yellow),
        Conn::Expired => ("✗ session expired: opening a new session…".to_string(), Color::Red),
    };
    let mut spans = vec![
        Span::styled(" zkutil inspect ", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!(" {}  ", app.hosts)),
        Span::styled(text, Style::new().fg(color)),
    ];
    if app.read_only {
        spans.push(Span::styled("  [read-only]", Style::new().fg(Color::Magenta)));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn tree(f: &mut Frame, app: &App, area: Rect) {
    let title = format!(" {} · {}/{} ", app.root, app.cursor + 1, app.rows.len());
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let width = inner.width as usize;
    let end = (app.scroll + inner.height as usize).min(app.rows.len());
    let lines: Vec<Line> = app.rows[app.scroll.min(end)..end]
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let node = app.node(&row.path);
            let stat = node.and_then(|n| n.stat);
            let expanded = node.is_some_and(|n| n.expanded);
            let arrow = match (expanded, stat.map(|s| s.num_children)) {
                (_, Some(0)) if node.and_then(|n| n.children.as_ref()).is_none_or(|c| c.is_empty()) => " ",
                (true, _) => "▾",
                (false, _) => "▸",
            };
            let name = if row.depth == 0 { row.path.as_str() } else { row.path.rsplit('/').next().unwrap_or("") };
            let mark = node.and_then(|n| n.mark).map(|(m, _)| m);
            let mut left = format!("{}{arrow} {name}", "  ".repeat(row.depth));
            if let Some(m) = mark {
                left.push(' ');
                left.push_str(m.tag());
            }
            if let Some(n) = node
                && expanded
                && !n.filter.is_empty()
            {
                left.push_str(&format!(" (filter {:?})", n.filter));
            }
            let right = match stat {
                Some(s) if s.num_children > 0 => {
                    format!("{:>7}  {:>9}", s.num_children, data::size(s.data_length as i64))
                }
                Some(s) => format!("{:>7}  {:>9}", "", data::size(s.data_length as i64)),
                None if node.is_some_and(|n| n.gone) => String::new(),
                None => format!("{:>18}", "…"),
            };
            let pad = width.saturating_sub(left.chars().count() + right.chars().count()).max(1);
            let text = format!("{left}{}{right}", " ".repeat(pad));
            let mut style = match mark {
                Some(Mark::Added) => Style::new().fg(Color::Green),
                Some(Mark::Changed) => Style::new().fg(Color::Yellow),
                Some(Mark::Removed) => Style::new().fg(Color::Red).add_modifier(Modifier::CROSSED_OUT),
                None => Style::new(),
            };
            if app.scroll + i == app.cursor {
                style = style.add_modifier(Modifier::REVERSED);
            }
            Line::styled(text, style)
        })
        .collect();
    f.render_widget(Paragraph::new(lines), inner);
}

fn node_pane(f: &mut Frame, app: &App, area: Rect) {
    let sel = app.selected().unwrap_or(&app.root).to_string();
    let block = Block::default().borders(Borders::ALL).title(format!(" {sel} "));
    let mut lines: Vec<Line> = Vec::new();
    let heading = |t: String| Line::styled(t, Style::new().add_modifier(Modifier::BOLD).fg(Color::Cyan));
    match app.detail.as_ref().filter(|d| d.path == sel) {
        None if app.node(&sel).is_some_and(|n| n.gone) => lines.push(Line::raw("(removed)")),
        None => lines.push(Line::raw("reading…")),
        Some(d) => {
            let (kind, shown) = data::show(&d.data);
            lines.push(heading(format!("Data · {} · {}", data::size(d.data.len() as i64), kind.label())));
            lines.extend(shown.into_iter().map(Line::raw));
            lines.push(Line::raw(""));
            lines.push(heading("Stat".into()));
            lines.extend(data::stat_lines(&d.stat, now_millis()).into_iter().map(Line::raw));
            if d.stat.ephemeral_owner != 0 {
                let own = match app.conn {
                    Conn::Connected { session, .. } | Conn::Reconnecting { session } => session,
                    _ => 0,
                };
                let note = if own == d.stat.ephemeral_owner { " (this inspector's session)" } else { "" };
                lines.push(Line::raw(format!("ephemeral: owned by session {:#x}{note}", d.stat.ephemeral_owner)));
            }
            lines.push(Line::raw(""));
            lines.push(heading("ACL".into()));
            for a in &d.acl {
                lines.push(Line::raw(format!("{}:{}:{}", a.scheme, a.id, a.perms_string())));
            }
        }
    }
    f.render_widget(Paragraph::new(lines).block(block).scroll((app.detail_scroll, 0)), area);
}

fn footer_keys(app: &App) -> String {
    match &app.mode {
        Mode::Normal if app.read_only => {
            " q quit  ↑↓ move  →/← open/close  g go to  / filter  r refresh  y copy  J/K scroll  ? help".into()
        }
        Mode::Normal => {
            " q quit  ↑↓ move  →/← open/close  g go to  / filter  r refresh  c create  e edit  d delete  y copy  ? help"
                .into()
        }
        Mode::Help => " any key: close the help".into(),
        Mode::Input { .. } => " Enter: OK  Esc: cancel  Backspace: erase".into(),
        Mode::CreateMode { .. } => {
            " p persistent  s sequential  c container  t TTL  T sequential+TTL  Esc cancel".into()
        }
        Mode::Confirm { .. } => " y: yes  n/Esc: no".into(),
        Mode::Conflict(_) => " o: overwrite theirs with yours  e: edit yours again  k/Esc: keep theirs".into(),
    }
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width.saturating_sub(2));
    let h = height.min(area.height.saturating_sub(2));
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

fn dialog(f: &mut Frame, app: &App) {
    let area = f.area();
    let (title, lines, w, h): (String, Vec<Line>, u16, u16) = match &app.mode {
        Mode::Normal => return,
        Mode::Help => {
            let lines: Vec<Line> = HELP.iter().map(|(k, what)| Line::raw(format!("{k:<20} {what}"))).collect();
            let n = lines.len() as u16;
            (" Keys ".into(), lines, 84, n + 2)
        }
        Mode::Input { what, text } => {
            let lines = vec![Line::raw(what.prompt()), Line::raw(format!("> {text}▏"))];
            let title = match what {
                Input::Jump => " Go to ",
                Input::Filter { .. } => " Filter ",
                _ => " Create ",
            };
            (title.into(), lines, 80, 4)
        }
        Mode::CreateMode { path } => (
            " Create ".into(),
            vec![
                Line::raw(format!("Create {path} as:")),
                Line::raw("[p] persistent  [s] sequential  [c] container  [t] TTL  [T] sequential with TTL"),
            ],
            90,
            4,
        ),
        Mode::Confirm { question, .. } => (" Confirm ".into(), vec![Line::raw(question.clone())], 90, 4),
        Mode::Conflict(c) => {
            let width = area.width.saturating_sub(4);
            let half = (width as usize).saturating_sub(3) / 2;
            let (_, mine) = data::show(&c.mine);
            let (_, theirs) = data::show(&c.theirs);
            let mut lines = vec![
                Line::raw(format!("{} was changed by someone else while you edited it.", c.path)),
                Line::raw(""),
                Line::styled(
                    format!("{:<half$} │ theirs (dataVersion {})", "yours", c.stat.version),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
            ];
            for i in 0..mine.len().max(theirs.len()).min(area.height.saturating_sub(10) as usize) {
                let a: String = mine.get(i).map(String::as_str).unwrap_or("").chars().take(half).collect();
                let b: String = theirs.get(i).map(String::as_str).unwrap_or("").chars().take(half).collect();
                lines.push(Line::raw(format!("{a:<half$} │ {b}")));
            }
            lines.push(Line::raw(""));
            lines.push(Line::raw("[o] overwrite theirs with yours   [e] edit yours again   [k] keep theirs"));
            let h = lines.len() as u16 + 2;
            (" Conflict ".into(), lines, width, h)
        }
    };
    let rect = centered(area, w, h);
    f.render_widget(Clear, rect);
    let block = Block::default().borders(Borders::ALL).title(title).style(Style::new().fg(Color::White));
    f.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), rect);
}
