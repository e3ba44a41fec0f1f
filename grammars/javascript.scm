(import_statement) @import

(function_declaration name: (identifier) @name body: (statement_block) @body) @definition
(generator_function_declaration name: (identifier) @name body: (statement_block) @body) @definition
(method_definition name: (_) @name body: (statement_block) @body) @definition
(class_declaration name: (_) @name body: (class_body) @body) @definition
(arrow_function body: (statement_block) @body) @definition
(function_expression body: (statement_block) @body) @definition

(if_statement consequence: (statement_block) @body) @control
(for_statement body: (statement_block) @body) @control
(for_in_statement body: (statement_block) @body) @control
(while_statement body: (statement_block) @body) @control
(try_statement body: (statement_block) @body) @control
(switch_statement body: (switch_body) @body) @control

(return_statement) @exit
(throw_statement) @exit

(comment) @comment
(string) @string
(template_string) @string
