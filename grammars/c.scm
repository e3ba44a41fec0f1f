(preproc_include) @import

(function_definition declarator: (_) @name body: (compound_statement) @body) @definition
(struct_specifier name: (_) @name body: (field_declaration_list) @body) @definition
(preproc_def) @signature
(type_definition) @signature

(if_statement consequence: (compound_statement) @body) @control
(for_statement body: (compound_statement) @body) @control
(while_statement body: (compound_statement) @body) @control
(switch_statement body: (compound_statement) @body) @control

(return_statement) @exit

(comment) @comment
(string_literal) @string
