"""Call sites written for django-waffle (they do not change in the migration)."""

import waffle
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views import View
from django.views.generic import TemplateView
from waffle import flag_is_active
from waffle.decorators import waffle_flag, waffle_switch
from waffle.mixins import WaffleFlagMixin, WaffleSampleMixin


def checkout(request: HttpRequest) -> HttpResponse:
    if flag_is_active(request, "new_checkout"):
        return HttpResponse("new checkout")
    return HttpResponse("old checkout")


@waffle_flag("beta_page")
def beta(request: HttpRequest) -> HttpResponse:
    return HttpResponse("beta")


@waffle_switch("!maintenance")
def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("home" if not waffle.switch_is_active("dark_mode") else "home (dark)")


class Reports(WaffleFlagMixin, TemplateView):
    waffle_flag = "reports"
    template_name = "shop/page.html"


class Survey(WaffleSampleMixin, View):
    waffle_sample = "survey"

    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("survey")


def page(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/page.html")
