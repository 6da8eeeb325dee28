"""The admin's list of management-API tokens: who holds one, when it was last used, revoke.

Never a secret: tokens are stored hashed and shown once by ``manage.py flagapp_api_token
create``; the admin cannot create one (there would be nowhere safe to show it) but can
revoke.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from flagapp.models import ApiToken

__all__ = ["ApiTokenAdmin"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "name", "user__username")
    fields = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        from flagapp.api.tokens import revoke_api_token

        rows = [revoke_api_token(row) for row in queryset]
        self.message_user(request, f"Revoked {len(rows)} token(s).", messages.SUCCESS)
