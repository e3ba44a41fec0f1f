(use_declaration) @import
(mod_item) @import

(function_item name: (identifier) @name body: (block) @body) @definition
(impl_item body: (declaration_list) @body) @definition
(trait_item name: (type_identifier) @name body: (declaration_list) @body) @definition
(struct_item name: (type_identifier) @name) @signature
(enum_item name: (type_identifier) @name) @signature

(if_expression consequence: (block) @body) @control
(for_expression body: (block) @body) @control
(while_expression body: (block) @body) @control
(loop_expression body: (block) @body) @control
(match_expression body: (match_block) @body) @control

(return_expression) @exit

(line_comment) @comment
(block_comment) @comment
(string_literal) @string
(raw_string_literal) @string
