"""The department catalogue: roles, demo organisation and the processes deptflow ships."""
