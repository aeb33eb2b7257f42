"""Environment set-up: register every module and set the default scope."""
import datetime
import warnings

from mmengine import DefaultScope


def import_all_modules() -> None:
    """Import mmdet's and mmgrounding's modules so their registries fill.

    mmdet is imported first because the parent lookup of a child registry
    does not trigger the parent's lazy ``locations`` imports: an unprefixed
    mmdet type used inside the ``mmgrounding`` scope must already be there.
    """
    import mmdet.datasets  # noqa: F401
    import mmdet.engine  # noqa: F401
    import mmdet.evaluation  # noqa: F401
    import mmdet.models  # noqa: F401
    import mmdet.visualization  # noqa: F401

    import mmgrounding.datasets  # noqa: F401
    import mmgrounding.engine  # noqa: F401
    import mmgrounding.evaluation  # noqa: F401
    import mmgrounding.models  # noqa: F401
    import mmgrounding.visualization  # noqa: F401


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every module and optionally make ``mmgrounding`` the scope.

    Args:
        init_default_scope: set the default scope to ``mmgrounding``; when
            another scope is current, a new uniquely named ``mmgrounding``
            instance is created so that the current one is not overwritten.
    """
    import_all_modules()
    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None:
        DefaultScope.get_instance('mmgrounding', scope_name='mmgrounding')
    elif current.scope_name != 'mmgrounding':
        warnings.warn('The current default scope is '
                      f'"{current.scope_name}", not "mmgrounding"; '
                      '`register_all_modules` creates a new default scope '
                      'named "mmgrounding".')
        stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S%f')
        DefaultScope.get_instance(
            f'mmgrounding-{stamp}', scope_name='mmgrounding')
