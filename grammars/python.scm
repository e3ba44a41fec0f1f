; Span kinds for seeded mode. Captures: @import, @name, @comment, @docstring, @string,
; @signature (kept whole), @exit (return/raise: control flow), and pairs @definition/@control
; + @body: the header is the text from the start of the definition to the start of its body.
; @docstring_text: a docstring's text between its quotes; a hole of just that text is filled with
; a stop at the closing quotes, so any fill parses (a comment's text after `line_comment` likewise).
(import_statement) @import
(import_from_statement) @import
(future_import_statement) @import

(function_definition name: (identifier) @name body: (block) @body) @definition
(class_definition name: (identifier) @name body: (block) @body) @definition
(decorator) @signature

(if_statement consequence: (block) @body) @control
(elif_clause consequence: (block) @body) @control
(else_clause body: (block) @body) @control
(for_statement body: (block) @body) @control
(while_statement body: (block) @body) @control
(try_statement body: (block) @body) @control
(except_clause (block) @body) @control
(finally_clause (block) @body) @control
(with_statement body: (block) @body) @control
(match_statement body: (block) @body) @control

(return_statement) @exit
(raise_statement) @exit

; docstrings as CPython assigns __doc__: the first statement of a module, class or function (a
; string first in an if or for block is an expression, not a docstring)
(module . (expression_statement (string) @docstring))
(class_definition body: (block . (expression_statement (string) @docstring)))
(function_definition body: (block . (expression_statement (string) @docstring)))
(module . (expression_statement (string (string_content) @docstring_text)))
(class_definition body: (block . (expression_statement (string (string_content) @docstring_text))))
(function_definition body: (block . (expression_statement (string (string_content) @docstring_text))))
(comment) @comment
(string) @string
