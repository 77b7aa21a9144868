"""Domain errors carry a message fit to show a person; entry points map them to a form error or a 4xx."""


class DomainError(ValueError):
    """A business rule said no. Nothing was changed."""


class InvalidAmount(DomainError):
    pass


class InvalidTransition(DomainError):
    pass


class AllocationError(DomainError):
    pass


class InvalidDate(DomainError):
    pass
