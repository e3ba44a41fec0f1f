(package_clause) @import
(import_declaration) @import

(function_declaration name: (identifier) @name body: (block) @body) @definition
(method_declaration name: (field_identifier) @name body: (block) @body) @definition
(type_declaration) @signature

(if_statement consequence: (block) @body) @control
(for_statement body: (block) @body) @control

(return_statement) @exit

(comment) @comment
(interpreted_string_literal) @string
(raw_string_literal) @string
