(package_declaration) @import
(import_declaration) @import

(class_declaration name: (identifier) @name body: (class_body) @body) @definition
(interface_declaration name: (identifier) @name body: (interface_body) @body) @definition
(enum_declaration name: (identifier) @name body: (enum_body) @body) @definition
(method_declaration name: (identifier) @name body: (block) @body) @definition
(constructor_declaration name: (identifier) @name body: (constructor_body) @body) @definition

(if_statement consequence: (block) @body) @control
(for_statement body: (block) @body) @control
(enhanced_for_statement body: (block) @body) @control
(while_statement body: (block) @body) @control
(try_statement body: (block) @body) @control
(switch_expression body: (switch_block) @body) @control

(return_statement) @exit
(throw_statement) @exit

(line_comment) @comment
(block_comment) @comment
(string_literal) @string
