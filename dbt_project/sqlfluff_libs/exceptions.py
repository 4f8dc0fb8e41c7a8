"""dbt's ``exceptions`` as sqlfluff sees it: a compiler error stops the lint of the file with its message."""


class CompilerError(Exception):
    pass


def raise_compiler_error(message):
    raise CompilerError(message)
